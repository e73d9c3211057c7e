"""H.264/H.265 SPS parsing on hand-built parameter sets (syntax ffmpeg's encoders rarely emit).

The SPSs are written with a small bit writer following the specs' syntax tables, so each
branch before the VUI (scaling lists, POC type 1, cropping, HEVC sub-layers, inter-predicted
reference picture sets, long-term pictures, PCM) is exercised, then the SAR is checked.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.probe import h26x
from workers.probe.h26x import BitReader, h264_sps_sar, hevc_sps_sar, unescape
from workers.probe.media import ProbeError


class Bits:
    """MSB-first bit writer with exp-Golomb codes; ``nal()`` adds emulation prevention."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> Bits:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def ue(self, value: int) -> Bits:
        code = value + 1
        n = code.bit_length()
        return self.u(n - 1, 0).u(n, code)

    def se(self, value: int) -> Bits:
        return self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp(self) -> bytes:
        bits = [*self.bits, 1]
        bits += [0] * (-len(bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))

    def nal(self, header: bytes) -> bytes:
        out, zeros = bytearray(header), 0
        for b in self.rbsp():
            if zeros >= 2 and b <= 3:
                out.append(3)
                zeros = 0
            out.append(b)
            zeros = zeros + 1 if b == 0 else 0
        return bytes(out)


def _vui_sar(w: Bits, sar: tuple[int, int] | int | None) -> Bits:
    if sar is None:
        return w.u(1, 0)
    w.u(1, 1)
    if isinstance(sar, int):
        return w.u(8, sar)
    return w.u(8, 255).u(16, sar[0]).u(16, sar[1])


def h264_sps(*, sar: tuple[int, int] | int | None, high: bool = True, poc_type: int = 0,
             scaling: bool = False, crop: bool = False, vui: bool = True) -> bytes:  # fmt: skip
    w = Bits().u(8, 100 if high else 66).u(8, 0).u(8, 30).ue(0)
    if high:
        w.ue(1).ue(0).ue(0).u(1, 0).u(1, 1 if scaling else 0)
        if scaling:
            for i in range(8):
                w.u(1, 1)  # every list present, with non-trivial deltas, ending early on nextScale 0
                for j in range(16 if i < 6 else 64):
                    w.se(-11 if j == 3 else 1)  # 9, 10, 11, then nextScale 0
                    if j == 3:
                        break
    w.ue(0).ue(poc_type)
    if poc_type == 0:
        w.ue(2)
    elif poc_type == 1:
        w.u(1, 0).se(-1).se(2).ue(3).se(1).se(-2).se(3)
    w.ue(1).u(1, 0).ue(3).ue(2).u(1, 1).u(1, 1).u(1, 1 if crop else 0)
    if crop:
        w.ue(0).ue(1).ue(0).ue(2)
    w.u(1, 1 if vui else 0)
    if vui:
        _vui_sar(w, sar)
        w.u(1, 0)  # overscan_info_present_flag: the rest of the VUI is irrelevant
    return w.nal(b"\x67")


def hevc_sps(*, sar: tuple[int, int] | int | None, sub_layers: int = 0, scaling: bool = False,
             inter_rps: bool = False, long_term: bool = False, pcm: bool = False) -> bytes:  # fmt: skip
    w = Bits().u(4, 0).u(3, sub_layers).u(1, 1)
    w.u(2, 0).u(1, 0).u(5, 1).u(32, 0x60000000).u(48, 0).u(8, 93)  # general profile_tier_level
    for _ in range(sub_layers):
        w.u(1, 1).u(1, 1)
    if sub_layers:
        w.u(2 * (8 - sub_layers), 0)
    for _ in range(sub_layers):
        w.u(88, 0).u(8, 90)
    w.ue(0).ue(1).ue(64).ue(48).u(1, 1).ue(0).ue(0).ue(0).ue(0)  # ids, 4:2:0, 64x48, window
    w.ue(0).ue(0).ue(4)  # 8-bit luma and chroma, log2_max_pic_order_cnt_lsb 8
    w.u(1, 1)  # sub_layer_ordering_info_present_flag
    for _ in range(sub_layers + 1):
        w.ue(4).ue(2).ue(0)
    w.ue(0).ue(3).ue(0).ue(3).ue(1).ue(1)
    w.u(1, 1 if scaling else 0)
    if scaling:
        w.u(1, 1)
        for size_id in range(4):
            for matrix_id in range(0, 6, 3 if size_id == 3 else 1):
                if matrix_id % 2:
                    w.u(1, 0).ue(0)
                    continue
                w.u(1, 1)
                if size_id > 1:
                    w.se(3)
                for _ in range(min(64, 1 << (4 + (size_id << 1)))):
                    w.se(-1)
    w.u(1, 0).u(1, 1).u(1, 1 if pcm else 0)
    if pcm:
        w.u(4, 7).u(4, 7).ue(0).ue(1).u(1, 0)
    w.ue(3 if inter_rps else 1)
    w.ue(2).ue(1)
    for delta in (0, 1, 0):  # set 0: 2 negative, 1 positive pictures
        w.ue(delta).u(1, 1)
    if inter_rps:
        for _ in range(2):  # sets 1, 2 predicted from the previous one (3 pictures + itself)
            w.u(1, 1).u(1, 0).ue(0)
            w.u(1, 1).u(1, 0).u(1, 0).u(1, 1).u(1, 1)  # used, unused+use_delta 0, unused+use_delta 1, used
    w.u(1, 1 if long_term else 0)
    if long_term:
        w.ue(2).u(8, 5).u(1, 1).u(8, 9).u(1, 0)
    w.u(1, 1).u(1, 0).u(1, 1)  # temporal mvp, strong intra smoothing, vui present
    _vui_sar(w, sar)
    return w.nal(b"\x42\x01")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"high": False},
        {"high": True},
        {"scaling": True},
        {"poc_type": 1},
        {"poc_type": 2, "crop": True},
    ],
)
@pytest.mark.parametrize(("sar", "expect"), [((4, 3), (4, 3)), (14, (4, 3)), (2, (12, 11)), (0, None)])
def test_h264_sar(
    kwargs: dict[str, object], sar: tuple[int, int] | int, expect: tuple[int, int] | None
) -> None:
    """The VUI SAR is reached through every SPS branch; idc 255 gives the explicit ratio."""
    assert h264_sps_sar(h264_sps(sar=sar, **kwargs)) == expect  # type: ignore[arg-type]


def test_h264_without_vui_or_aspect_info() -> None:
    """No VUI, or a VUI without aspect_ratio_info, is "not known" (None)."""
    assert h264_sps_sar(h264_sps(sar=None, vui=False)) is None
    assert h264_sps_sar(h264_sps(sar=None)) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"sub_layers": 2},
        {"sub_layers": 6},
        {"scaling": True},
        {"inter_rps": True},
        {"long_term": True, "pcm": True},
    ],
)
def test_hevc_sar(kwargs: dict[str, object]) -> None:
    """The HEVC VUI SAR is reached past profile_tier_level, scaling lists, RPS sets, PCM, LTRP."""
    assert hevc_sps_sar(hevc_sps(sar=(40, 33), **kwargs)) == (40, 33)  # type: ignore[arg-type]
    assert hevc_sps_sar(hevc_sps(sar=16, **kwargs)) == (2, 1)  # type: ignore[arg-type]


def test_emulation_prevention_is_removed() -> None:
    """00 00 03 becomes 00 00; a 03 not after two zeros stays."""
    assert unescape(b"\x00\x00\x03\x01\x03\x00\x00\x03") == b"\x00\x00\x01\x03\x00\x00"
    assert unescape(b"\x12\x34") == b"\x12\x34"


def test_sar_behind_emulation_prevention() -> None:
    """An explicit SAR whose bits hold 30 zeros in a row (32768:1) survives escaping."""
    nal = h264_sps(sar=(32768, 1))
    assert b"\x00\x00\x03" in nal
    assert h264_sps_sar(nal) == (32768, 1)


@pytest.mark.parametrize("value", [0, 1, 2, 7, 254, 255, 65535, (1 << 31) - 2])
def test_exp_golomb_round_trip(value: int) -> None:
    """ue/se decode what the spec's encoding produces."""
    r = BitReader(Bits().ue(value).se(-value).se(value).rbsp(), "test")
    assert (r.ue("a"), r.se("b"), r.se("c")) == (value, -value, value)


def test_errors_name_the_field() -> None:
    """A cut SPS or a wrong NAL type fails with the field that could not be read."""
    with pytest.raises(ProbeError, match=r"avcC SPS: bitstream ends at bit \d+ while reading"):
        h264_sps_sar(h264_sps(sar=(4, 3))[:4])
    with pytest.raises(ProbeError, match="expected 7"):
        h264_sps_sar(b"\x68\x00")
    with pytest.raises(ProbeError, match="expected 33"):
        hevc_sps_sar(b"\x44\x01\x00")
    with pytest.raises(ProbeError, match="longer than 32 bits"):
        BitReader(b"\x00" * 5 + b"\x80", "test").ue("x")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_parameter_sets_raise_only_probe_error(data: bytes) -> None:
    """Random SPS payloads parse or fail with ProbeError, never anything else."""
    for parse, header in ((h264_sps_sar, b"\x67"), (hevc_sps_sar, b"\x42\x01")):
        try:
            parse(header + data)
        except ProbeError:
            pass


def h264_baseline_sps(*, timing: tuple[int, int] | None, cut_timing: bool = False) -> bytes:
    """Baseline SPS, 80x96 field-coded macroblock pairs cropped by 1 unit (4 lines) at the
    bottom, with a full VUI before its timing info."""
    w = Bits().u(8, 66).u(8, 0).u(8, 30).ue(0).ue(0).ue(2).ue(1).u(1, 0)
    w.ue(4).ue(2).u(1, 0).u(1, 0).u(1, 1)  # 5x3 map units, frame_mbs_only 0, no MBAFF, direct 8x8
    w.u(1, 1).ue(0).ue(0).ue(0).ue(1)  # cropping: bottom 1
    w.u(1, 1).u(1, 0).u(1, 0)  # VUI: no aspect ratio, no overscan info
    w.u(1, 1).u(3, 5).u(1, 0).u(1, 1).u(24, 0x010101)  # video signal type, colour description
    w.u(1, 1).ue(0).ue(0)  # chroma sample location
    w.u(1, 1 if timing else 0)
    if timing and not cut_timing:
        w.u(32, timing[0]).u(32, timing[1]).u(1, 1)
    elif timing:
        w.u(16, timing[0] >> 16)
    return w.nal(b"\x67")


@pytest.mark.parametrize(
    ("nal", "expected"),
    [
        (h264_baseline_sps(timing=(1001, 60000)), (80, 92, None, Fraction(30000, 1001))),
        (h264_baseline_sps(timing=(1, 50)), (80, 92, None, Fraction(25))),
        (h264_baseline_sps(timing=None), (80, 92, None, None)),
        # a VUI cut inside its timing info: size and SAR stand, the rate is unknown
        (h264_baseline_sps(timing=(1001, 48000), cut_timing=True), (80, 92, None, None)),
        (h264_baseline_sps(timing=(0, 50)), (80, 92, None, None)),
        # 4:2:0 frame coding, crop right 1 and bottom 2 (2-sample units): 64x48 -> 62x44
        (h264_sps(sar=(4, 3), crop=True), (62, 44, (4, 3), None)),
        (hevc_sps(sar=1), (64, 48, (1, 1), None)),
    ],
)
def test_sps_size_and_rate(
    nal: bytes, expected: tuple[int, int, tuple[int, int] | None, Fraction | None]
) -> None:
    """The coded size less the cropping window, and the VUI timing as a frame rate (a field
    tick for H.264); a VUI that ends early loses only its rate."""
    sps = h26x.h264_sps(nal) if nal[0] == 0x67 else h26x.hevc_sps(nal)
    assert (sps.width, sps.height, sps.sar, sps.fps) == expected

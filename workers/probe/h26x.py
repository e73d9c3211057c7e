"""H.264 and H.265 sequence parameter sets: just enough to reach the VUI's sample aspect ratio.

Theory of operation: a parameter set NAL unit (as stored in ``avcC``/``hvcC``) is turned into
its RBSP by removing emulation-prevention bytes (``00 00 03`` -> ``00 00``), then read with a
big-endian bit reader that knows exp-Golomb codes. Every syntax element before the VUI is
parsed in order (scaling lists, HEVC ``profile_tier_level`` and short-term reference picture
sets included) because the VUI sits behind variable-length fields. A bitstream that ends
early or holds an impossible value raises ``ProbeError`` naming the field.

:func:`h264_sps` and :func:`hevc_sps` return an :class:`Sps`: the coded size less the cropping
(conformance) window, the ``aspect_ratio_idc`` (and the explicit ``sar_width``/``sar_height``
for ``idc == 255``) as an unreduced ``(h, v)`` pair or ``None`` when the SPS carries no VUI or
says "unspecified", and the VUI timing as a frame rate (H.264: ``time_scale / (2 *
num_units_in_tick)``, a tick being a field; H.265: ``time_scale / num_units_in_tick``). The VUI
fields after the aspect ratio are read leniently: a VUI that ends early leaves the rate unknown
instead of failing an SPS whose size and SAR were read. ``h264_sps_sar``/``hevc_sps_sar`` give
the SAR alone.
"""

from __future__ import annotations

from fractions import Fraction

import msgspec

from workers.probe.media import ProbeError

# Table E-1 of both specs: aspect_ratio_idc 1..16
SAR_TABLE: tuple[tuple[int, int], ...] = (
    (1, 1), (12, 11), (10, 11), (16, 11), (40, 33), (24, 11), (20, 11), (32, 11),
    (80, 33), (18, 11), (15, 11), (64, 33), (160, 99), (4, 3), (3, 2), (2, 1),
)  # fmt: skip
EXTENDED_SAR = 255
# H.264 profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices
_H264_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
_MAX_UE_ZEROS = 31


def unescape(nal: bytes) -> bytes:
    """The RBSP of a NAL unit: drop each ``03`` that follows two zero bytes."""
    if b"\x00\x00\x03" not in nal:
        return nal
    out = bytearray()
    zeros = 0
    for b in nal:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


class BitReader:
    """MSB-first bit reader over an RBSP, with exp-Golomb decoding."""

    __slots__ = ("_bits", "_nbits", "_pos", "what")

    def __init__(self, rbsp: bytes, what: str) -> None:
        self._bits = int.from_bytes(rbsp, "big")
        self._nbits = len(rbsp) * 8
        self._pos = 0
        self.what = what

    def u(self, n: int, field: str) -> int:
        """Read ``n`` bits as an unsigned integer."""
        if n == 0:
            return 0
        end = self._pos + n
        if end > self._nbits:
            raise ProbeError(f"{self.what}: bitstream ends at bit {self._nbits} while reading {field}")
        value = (self._bits >> (self._nbits - end)) & ((1 << n) - 1)
        self._pos = end
        return value

    def flag(self, field: str) -> bool:
        """Read one bit."""
        return self.u(1, field) == 1

    def ue(self, field: str) -> int:
        """Read an unsigned exp-Golomb code: ``zeros`` 0 bits, a 1, then ``zeros`` bits.

        The leading zeros are counted from the bit length of what is left, not bit by bit;
        the errors are those of a bit-by-bit read (a run of more than 31 zeros, else the end).
        """
        left = self._nbits - self._pos
        rest = self._bits & ((1 << left) - 1)
        zeros = left - rest.bit_length()  # all that is left when no 1 bit remains
        if zeros > _MAX_UE_ZEROS:
            raise ProbeError(f"{self.what}: exp-Golomb code of {field} longer than 32 bits")
        if not rest:
            raise ProbeError(f"{self.what}: bitstream ends at bit {self._nbits} while reading {field}")
        self._pos += zeros + 1
        return (1 << zeros) - 1 + self.u(zeros, field)

    def se(self, field: str) -> int:
        """Read a signed exp-Golomb code."""
        k = self.ue(field)
        return (k + 1) // 2 if k % 2 else -(k // 2)

    def skip(self, n: int, field: str) -> None:
        """Skip ``n`` bits (checked against the end)."""
        if self._pos + n > self._nbits:
            raise ProbeError(f"{self.what}: bitstream ends at bit {self._nbits} while skipping {field}")
        self._pos += n


def _vui_sar(r: BitReader) -> tuple[int, int] | None:
    """The aspect-ratio part at the start of ``vui_parameters()`` (same in both codecs)."""
    if not r.flag("aspect_ratio_info_present_flag"):
        return None
    idc = r.u(8, "aspect_ratio_idc")
    if idc == EXTENDED_SAR:
        h = r.u(16, "sar_width")
        v = r.u(16, "sar_height")
        return (h, v) if h and v else None
    if 1 <= idc <= len(SAR_TABLE):
        return SAR_TABLE[idc - 1]
    return None  # 0 = unspecified, 17..254 reserved


class Sps(msgspec.Struct, frozen=True, kw_only=True):
    """What a sequence parameter set says about the pictures."""

    width: int
    height: int
    sar: tuple[int, int] | None
    fps: Fraction | None


def _vui(r: BitReader, *, hevc: bool) -> tuple[tuple[int, int] | None, Fraction | None]:
    """(SAR, frame rate) from ``vui_parameters()``; the rate is None when absent or cut short."""
    sar = _vui_sar(r)
    try:
        if r.flag("overscan_info_present_flag"):
            r.skip(1, "overscan_appropriate_flag")
        if r.flag("video_signal_type_present_flag"):
            r.skip(4, "video_format, video_full_range_flag")
            if r.flag("colour_description_present_flag"):
                r.skip(24, "colour_primaries, transfer_characteristics, matrix_coeffs")
        if r.flag("chroma_loc_info_present_flag"):
            r.ue("chroma_sample_loc_type_top_field")
            r.ue("chroma_sample_loc_type_bottom_field")
        if hevc:
            r.skip(3, "neutral_chroma_indication_flag, field_seq_flag, frame_field_info_present_flag")
            if r.flag("default_display_window_flag"):
                for field in ("left", "right", "top", "bottom"):
                    r.ue(f"def_disp_win_{field}_offset")
        if not r.flag("timing_info_present_flag"):
            return sar, None
        units, scale = r.u(32, "num_units_in_tick"), r.u(32, "time_scale")
    except ProbeError:
        return sar, None
    if not units or not scale:
        return sar, None
    return sar, Fraction(scale, units if hevc else 2 * units)


def _cropped(width: int, height: int, unit: tuple[int, int], window: list[int]) -> tuple[int, int]:
    """The size less a cropping window (left, right, top, bottom) counted in ``unit`` samples;
    a window that leaves nothing is ignored, as decoders ignore it."""
    left, right, top, bottom = window
    cropped = width - unit[0] * (left + right), height - unit[1] * (top + bottom)
    return cropped if cropped[0] > 0 and cropped[1] > 0 else (width, height)


def _chroma_format(r: BitReader) -> int:
    """``chroma_format_idc`` and, for 4:4:4, ``separate_colour_plane_flag`` (same in both codecs)."""
    chroma = r.ue("chroma_format_idc")
    if chroma > 3:
        raise ProbeError(f"{r.what}: chroma_format_idc {chroma} > 3")
    if chroma == 3:
        r.skip(1, "separate_colour_plane_flag")
    return chroma


def _h264_scaling_list(r: BitReader, size: int) -> None:
    last, nxt = 8, 8
    for _ in range(size):
        if nxt != 0:
            delta = r.se("delta_scale")
            if not -128 <= delta <= 127:
                raise ProbeError(f"{r.what}: delta_scale {delta} outside -128..127")
            nxt = (last + delta + 256) % 256
        last = nxt if nxt != 0 else last


def h264_sps_sar(nal: bytes) -> tuple[int, int] | None:
    """SAR from an H.264 SPS NAL unit (header byte included), or ``None`` without VUI SAR."""
    return h264_sps(nal).sar


def h264_sps(nal: bytes) -> Sps:
    """Size, SAR and VUI frame rate from an H.264 SPS NAL unit (header byte included)."""
    if not nal or nal[0] & 0x1F != 7:
        raise ProbeError(f"avcC: SPS NAL unit has type {nal[0] & 0x1F if nal else 'none'}, expected 7")
    r = BitReader(unescape(nal[1:]), "avcC SPS")
    profile = r.u(8, "profile_idc")
    r.skip(16, "constraint flags and level_idc")
    r.ue("seq_parameter_set_id")
    chroma = 1
    if profile in _H264_HIGH_PROFILES:
        chroma = _chroma_format(r)
        r.ue("bit_depth_luma_minus8")
        r.ue("bit_depth_chroma_minus8")
        r.skip(1, "qpprime_y_zero_transform_bypass_flag")
        if r.flag("seq_scaling_matrix_present_flag"):
            for i in range(8 if chroma != 3 else 12):
                if r.flag("seq_scaling_list_present_flag"):
                    _h264_scaling_list(r, 16 if i < 6 else 64)
    r.ue("log2_max_frame_num_minus4")
    poc_type = r.ue("pic_order_cnt_type")
    if poc_type == 0:
        r.ue("log2_max_pic_order_cnt_lsb_minus4")
    elif poc_type == 1:
        r.skip(1, "delta_pic_order_always_zero_flag")
        r.se("offset_for_non_ref_pic")
        r.se("offset_for_top_to_bottom_field")
        cycle = r.ue("num_ref_frames_in_pic_order_cnt_cycle")
        if cycle > 255:
            raise ProbeError(f"avcC SPS: num_ref_frames_in_pic_order_cnt_cycle {cycle} > 255")
        for _ in range(cycle):
            r.se("offset_for_ref_frame")
    elif poc_type != 2:
        raise ProbeError(f"avcC SPS: pic_order_cnt_type {poc_type} > 2")
    r.ue("max_num_ref_frames")
    r.skip(1, "gaps_in_frame_num_value_allowed_flag")
    width = 16 * (r.ue("pic_width_in_mbs_minus1") + 1)
    map_units = r.ue("pic_height_in_map_units_minus1") + 1
    frame_mbs_only = r.flag("frame_mbs_only_flag")
    if not frame_mbs_only:
        r.skip(1, "mb_adaptive_frame_field_flag")
    r.skip(1, "direct_8x8_inference_flag")
    fields = 1 if frame_mbs_only else 2
    window = [0, 0, 0, 0]
    if r.flag("frame_cropping_flag"):
        window = [r.ue(f"frame_crop_{field}_offset") for field in ("left", "right", "top", "bottom")]
    unit = (1, fields) if chroma in (0, 3) else (2, (2 if chroma == 1 else 1) * fields)
    width, height = _cropped(width, 16 * map_units * fields, unit, window)
    sar, fps = _vui(r, hevc=False) if r.flag("vui_parameters_present_flag") else (None, None)
    return Sps(width=width, height=height, sar=sar, fps=fps)


def _hevc_profile_tier_level(r: BitReader, max_sub_layers_minus1: int) -> None:
    r.skip(96, "general_profile_tier_level")  # space, tier, idc, 32 compat flags, 48 flag bits, level
    profile_present = []
    level_present = []
    for _ in range(max_sub_layers_minus1):
        profile_present.append(r.flag("sub_layer_profile_present_flag"))
        level_present.append(r.flag("sub_layer_level_present_flag"))
    if max_sub_layers_minus1 > 0:
        r.skip(2 * (8 - max_sub_layers_minus1), "reserved_zero_2bits")
    for i in range(max_sub_layers_minus1):
        if profile_present[i]:
            r.skip(88, "sub_layer_profile")
        if level_present[i]:
            r.skip(8, "sub_layer_level_idc")


def _hevc_scaling_list_data(r: BitReader) -> None:
    for size_id in range(4):
        for _ in range(0, 6, 3 if size_id == 3 else 1):
            if not r.flag("scaling_list_pred_mode_flag"):
                r.ue("scaling_list_pred_matrix_id_delta")
                continue
            if size_id > 1:
                r.se("scaling_list_dc_coef_minus8")
            for _ in range(min(64, 1 << (4 + (size_id << 1)))):
                r.se("scaling_list_delta_coef")


def _hevc_st_ref_pic_sets(r: BitReader, count: int) -> None:
    num_delta_pocs: list[int] = []
    for idx in range(count):
        inter = idx != 0 and r.flag("inter_ref_pic_set_prediction_flag")
        if inter:
            r.skip(1, "delta_rps_sign")
            r.ue("abs_delta_rps_minus1")
            kept = 0
            for _ in range(num_delta_pocs[idx - 1] + 1):
                used = r.flag("used_by_curr_pic_flag")
                if used or r.flag("use_delta_flag"):
                    kept += 1
            num_delta_pocs.append(kept)
        else:
            negative = r.ue("num_negative_pics")
            positive = r.ue("num_positive_pics")
            if negative > 16 or positive > 16:
                raise ProbeError(f"hvcC SPS: st_ref_pic_set {idx} has {negative}+{positive} pictures")
            for _ in range(negative + positive):
                r.ue("delta_poc_minus1")
                r.skip(1, "used_by_curr_pic_flag")
            num_delta_pocs.append(negative + positive)


def hevc_sps_sar(nal: bytes) -> tuple[int, int] | None:
    """SAR from an H.265 SPS NAL unit (2-byte header included), or ``None`` without VUI SAR."""
    return hevc_sps(nal).sar


def hevc_sps(nal: bytes) -> Sps:
    """Size, SAR and VUI frame rate from an H.265 SPS NAL unit (2-byte header included)."""
    if len(nal) < 2 or (nal[0] >> 1) & 0x3F != 33:
        got = (nal[0] >> 1) & 0x3F if nal else "none"
        raise ProbeError(f"hvcC: SPS NAL unit has type {got}, expected 33")
    r = BitReader(unescape(nal[2:]), "hvcC SPS")
    r.skip(4, "sps_video_parameter_set_id")
    max_sub_layers_minus1 = r.u(3, "sps_max_sub_layers_minus1")
    if max_sub_layers_minus1 > 6:
        raise ProbeError(f"hvcC SPS: sps_max_sub_layers_minus1 {max_sub_layers_minus1} > 6")
    r.skip(1, "sps_temporal_id_nesting_flag")
    _hevc_profile_tier_level(r, max_sub_layers_minus1)
    r.ue("sps_seq_parameter_set_id")
    chroma = _chroma_format(r)
    width = r.ue("pic_width_in_luma_samples")
    height = r.ue("pic_height_in_luma_samples")
    window = [0, 0, 0, 0]
    if r.flag("conformance_window_flag"):
        window = [r.ue(f"conf_win_{field}_offset") for field in ("left", "right", "top", "bottom")]
    unit = (2 if chroma in (1, 2) else 1, 2 if chroma == 1 else 1)
    width, height = _cropped(width, height, unit, window)
    r.ue("bit_depth_luma_minus8")
    r.ue("bit_depth_chroma_minus8")
    log2_max_poc_lsb = r.ue("log2_max_pic_order_cnt_lsb_minus4") + 4
    if log2_max_poc_lsb > 16:
        raise ProbeError(f"hvcC SPS: log2_max_pic_order_cnt_lsb {log2_max_poc_lsb} > 16")
    first = 0 if r.flag("sps_sub_layer_ordering_info_present_flag") else max_sub_layers_minus1
    for _ in range(first, max_sub_layers_minus1 + 1):
        r.ue("sps_max_dec_pic_buffering_minus1")
        r.ue("sps_max_num_reorder_pics")
        r.ue("sps_max_latency_increase_plus1")
    for field in (
        "log2_min_luma_coding_block_size_minus3",
        "log2_diff_max_min_luma_coding_block_size",
        "log2_min_luma_transform_block_size_minus2",
        "log2_diff_max_min_luma_transform_block_size",
        "max_transform_hierarchy_depth_inter",
        "max_transform_hierarchy_depth_intra",
    ):
        r.ue(field)
    if r.flag("scaling_list_enabled_flag") and r.flag("sps_scaling_list_data_present_flag"):
        _hevc_scaling_list_data(r)
    r.skip(2, "amp_enabled_flag, sample_adaptive_offset_enabled_flag")
    if r.flag("pcm_enabled_flag"):
        r.skip(8, "pcm_sample_bit_depths")
        r.ue("log2_min_pcm_luma_coding_block_size_minus3")
        r.ue("log2_diff_max_min_pcm_luma_coding_block_size")
        r.skip(1, "pcm_loop_filter_disabled_flag")
    sets = r.ue("num_short_term_ref_pic_sets")
    if sets > 64:
        raise ProbeError(f"hvcC SPS: num_short_term_ref_pic_sets {sets} > 64")
    _hevc_st_ref_pic_sets(r, sets)
    if r.flag("long_term_ref_pics_present_flag"):
        count = r.ue("num_long_term_ref_pics_sps")
        if count > 32:
            raise ProbeError(f"hvcC SPS: num_long_term_ref_pics_sps {count} > 32")
        r.skip(count * (log2_max_poc_lsb + 1), "lt_ref_pic_poc_lsb_sps and used flags")
    r.skip(2, "sps_temporal_mvp_enabled_flag, strong_intra_smoothing_enabled_flag")
    sar, fps = _vui(r, hevc=True) if r.flag("vui_parameters_present_flag") else (None, None)
    return Sps(width=width, height=height, sar=sar, fps=fps)

"""The sample aspect ratio of an H.264 SPS, read in one pass over a string of its bits.

:func:`workers.probe.h26x.h264_sps` is the reference: a bit reader that names every field,
so a broken SPS is reported precisely. Reading the SAR of every probed MP4 that way costs
one method call per syntax element; this reader walks the same syntax (everything before
``aspect_ratio_idc`` is variable-length) over the RBSP written out as ``"0"``/``"1"``
characters and stops at the SAR. The usual SPS is read by one regular expression (an
exp-Golomb code is an alternation of its 32 possible lengths); any other, field by field, an
exp-Golomb code being one ``str.find`` for its leading one. It does not report errors: at
the first thing the reference would refuse (a field past the end, an exp-Golomb code longer
than 32 bits, an out-of-range value) it hands the NAL unit to the reference, which then
raises its own, identical, error. Fields after the SAR are never read: the reference reads
them leniently (they cannot fail an SPS).

The RBSP: ``00 00 03`` -> ``00 00``, left to right, is what ``bytes.replace`` does (the
zero count restarts after a removed byte in both; the tests compare the two).
"""

from __future__ import annotations

import re

from workers.probe.h26x import EXTENDED_SAR, SAR_TABLE, h264_sps

_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
_MAX_ZEROS = 31
_MATCHED_ZEROS = 15  # longer codes (values past 65,534: no real SPS) go field by field


class _Decline(Exception):
    """Something the reference reports: let it."""


def _ue_pattern() -> str:
    """One exp-Golomb code of at most ``_MATCHED_ZEROS`` leading zeros. The codes are prefix-free:
    at most one alternative matches at a position, so a match is the one way to read the bits."""
    return "(?:" + "|".join(f"{'0' * zeros}1[01]{{{zeros}}}" for zeros in range(_MATCHED_ZEROS + 1)) + ")"


_UE = _ue_pattern()
_AFTER_PROFILE = (  # from log2_max_frame_num_minus4 to aspect_ratio_idc, the usual choices only
    f"{_UE}"  # log2_max_frame_num_minus4
    f"(?:1{_UE}|011)"  # pic_order_cnt_type 0 and log2_max_pic_order_cnt_lsb_minus4, or type 2
    f"{_UE}[01]{_UE}{_UE}"  # max_num_ref_frames, gaps flag, width and height in macroblocks
    "(?:1|0[01])[01]"  # frame_mbs_only_flag [mb_adaptive_frame_field_flag], direct_8x8_inference
    f"(?:0|1{_UE}{_UE}{_UE}{_UE})"  # frame_cropping_flag [the four offsets]
    "11([01]{8})"  # vui_parameters_present_flag, aspect_ratio_info_present_flag, aspect_ratio_idc
)
# The whole syntax up to the SAR in one match for the common SPS (chroma 4:0:0 to 4:2:2, no
# scaling matrix, picture order count type 0 or 2); anything else is read field by field.
_PLAIN = re.compile(f"[01]{{24}}{_UE}{_AFTER_PROFILE}")  # profile, flags, level; sps id
_HIGH = re.compile(f"[01]{{24}}{_UE}(?:1|01[01]){_UE}{_UE}[01]0{_AFTER_PROFILE}")  # + chroma .. no matrix


def _ue(bits: str, pos: int) -> tuple[int, int]:
    """``(value, next position)`` of the exp-Golomb code at ``pos`` of the bit string."""
    one = bits.find("1", pos)
    zeros = one - pos
    if one < 0 or zeros > _MAX_ZEROS or one + zeros >= len(bits):
        raise _Decline
    return int(bits[one : one + zeros + 1], 2) - 1, one + zeros + 1


def _skip_ue(bits: str, pos: int, codes: int) -> int:
    """The position after ``codes`` exp-Golomb codes from ``pos`` (values not needed)."""
    end = len(bits)
    for _ in range(codes):
        one = bits.find("1", pos)
        zeros = one - pos
        if one < 0 or zeros > _MAX_ZEROS or one + zeros >= end:
            raise _Decline
        pos = one + zeros + 1
    return pos


def _se(bits: str, pos: int) -> tuple[int, int]:
    k, pos = _ue(bits, pos)
    return ((k + 1) // 2 if k % 2 else -(k // 2)), pos


def _scaling_lists(bits: str, pos: int, lists: int) -> int:
    for i in range(lists):
        if pos >= len(bits):
            raise _Decline
        pos += 1
        if bits[pos - 1] == "1":  # seq_scaling_list_present_flag
            last = nxt = 8
            for _ in range(16 if i < 6 else 64):
                if nxt:
                    delta, pos = _se(bits, pos)
                    if not -128 <= delta <= 127:
                        raise _Decline
                    nxt = (last + delta + 256) % 256
                last = nxt or last
    return pos


def _read_sar(rbsp: bytes) -> tuple[int, int] | None:
    end = len(rbsp) * 8
    if end < 24:
        raise _Decline
    bits = format(int.from_bytes(rbsp, "big"), "b").zfill(end)  # the RBSP as "0"/"1" characters
    match = (_HIGH if rbsp[0] in _HIGH_PROFILES else _PLAIN).match(bits)
    if match is not None:
        idc = int(match[1], 2)
        if idc != EXTENDED_SAR:
            return SAR_TABLE[idc - 1] if 1 <= idc <= len(SAR_TABLE) else None
    return _walk(bits, rbsp[0])


def _walk(bits: str, profile: int) -> tuple[int, int] | None:
    """:func:`_read_sar` field by field, for any syntax (``bits`` holds at least 24)."""
    end = len(bits)
    pos = _skip_ue(bits, 24, 1)  # profile_idc, constraint flags, level_idc; seq_parameter_set_id
    if profile in _HIGH_PROFILES:
        chroma, pos = _ue(bits, pos)
        if chroma > 3:
            raise _Decline
        if chroma == 3:
            pos += 1  # separate_colour_plane_flag
        pos = _skip_ue(bits, pos, 2) + 1  # bit depths; qpprime_y_zero_transform_bypass_flag
        if pos >= end:
            raise _Decline
        pos += 1
        if bits[pos - 1] == "1":  # seq_scaling_matrix_present_flag
            pos = _scaling_lists(bits, pos, 8 if chroma != 3 else 12)
    pos = _skip_ue(bits, pos, 1)  # log2_max_frame_num_minus4
    poc_type, pos = _ue(bits, pos)
    if poc_type == 0:
        pos = _skip_ue(bits, pos, 1)
    elif poc_type == 1:
        pos = _skip_ue(bits, pos + 1, 2)  # delta_pic_order_always_zero_flag; two se()
        cycle, pos = _ue(bits, pos)
        if cycle > 255:
            raise _Decline
        pos = _skip_ue(bits, pos, cycle)
    elif poc_type != 2:
        raise _Decline
    pos = _skip_ue(bits, pos, 1) + 1  # max_num_ref_frames; gaps_in_frame_num_value_allowed_flag
    pos = _skip_ue(bits, pos, 2)  # pic_width_in_mbs_minus1, pic_height_in_map_units_minus1
    # frame_mbs_only_flag [mb_adaptive_frame_field_flag], direct_8x8_inference_flag, frame_cropping_flag
    if pos >= end:
        raise _Decline
    pos += 2 if bits[pos] == "1" else 3
    if pos >= end:
        raise _Decline
    pos += 1
    if bits[pos - 1] == "1":
        pos = _skip_ue(bits, pos, 4)
    for _ in range(2):  # vui_parameters_present_flag, aspect_ratio_info_present_flag
        if pos >= end:
            raise _Decline
        if bits[pos] == "0":
            return None
        pos += 1
    if pos + 8 > end:
        raise _Decline
    idc = int(bits[pos : pos + 8], 2)
    if idc == EXTENDED_SAR:
        if pos + 40 > end:
            raise _Decline
        h, v = int(bits[pos + 8 : pos + 24], 2), int(bits[pos + 24 : pos + 40], 2)
        return (h, v) if h and v else None
    return SAR_TABLE[idc - 1] if 1 <= idc <= len(SAR_TABLE) else None


def h264_sps_sar(nal: bytes) -> tuple[int, int] | None:
    """What ``h26x.h264_sps(nal).sar`` returns, or the same ``ProbeError`` it raises."""
    if nal and nal[0] & 0x1F == 7:
        rbsp = nal[1:]
        if b"\x00\x00\x03" in rbsp:
            rbsp = rbsp.replace(b"\x00\x00\x03", b"\x00\x00")
        try:
            return _read_sar(rbsp)
        except _Decline:
            pass
    return h264_sps(nal).sar

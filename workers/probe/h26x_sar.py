"""The sample aspect ratio of an H.264 SPS, read in one pass over an ``int``.

:func:`workers.probe.h26x.h264_sps` is the reference: a bit reader that names every field,
so a broken SPS is reported precisely. Reading the SAR of every probed MP4 that way costs
one method call per syntax element; this reader walks the same syntax (everything before
``aspect_ratio_idc`` is variable-length) with shifts on one integer holding the RBSP, and
stops at the SAR. It does not report errors: at the first thing the reference would refuse
(a field past the end, an exp-Golomb code longer than 32 bits, an out-of-range value) it
hands the NAL unit to the reference, which then raises its own, identical, error. Fields
after the SAR are never read: the reference reads them leniently (they cannot fail an SPS).

The RBSP: ``00 00 03`` -> ``00 00``, left to right, is what ``bytes.replace`` does (the
zero count restarts after a removed byte in both; the tests compare the two).
"""

from __future__ import annotations

from workers.probe.h26x import EXTENDED_SAR, SAR_TABLE, h264_sps

_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
_MAX_ZEROS = 31


class _Decline(Exception):
    """Something the reference reports: let it."""


def _read_sar(rbsp: bytes) -> tuple[int, int] | None:
    bits = int.from_bytes(rbsp, "big")
    end = len(rbsp) * 8
    pos = 0

    def u(n: int) -> int:
        nonlocal pos
        pos += n
        if pos > end:
            raise _Decline
        return (bits >> (end - pos)) & ((1 << n) - 1)

    def ue() -> int:
        nonlocal pos
        left = end - pos
        if left <= 0:
            raise _Decline
        rest = bits & ((1 << left) - 1)
        zeros = left - rest.bit_length()
        if zeros > _MAX_ZEROS or 2 * zeros + 1 > left:
            raise _Decline
        pos += 2 * zeros + 1
        return (rest >> (end - pos)) - 1

    def se() -> int:
        k = ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)

    profile = u(8)
    pos += 16  # constraint flags, level_idc
    ue()  # seq_parameter_set_id
    if profile in _HIGH_PROFILES:
        chroma = ue()
        if chroma > 3:
            raise _Decline
        if chroma == 3:
            pos += 1  # separate_colour_plane_flag
        ue()  # bit_depth_luma_minus8
        ue()  # bit_depth_chroma_minus8
        pos += 1  # qpprime_y_zero_transform_bypass_flag
        if u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if u(1):
                    last = nxt = 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            delta = se()
                            if not -128 <= delta <= 127:
                                raise _Decline
                            nxt = (last + delta + 256) % 256
                        last = nxt or last
    ue()  # log2_max_frame_num_minus4
    poc_type = ue()
    if poc_type == 0:
        ue()
    elif poc_type == 1:
        pos += 1
        se()
        se()
        cycle = ue()
        if cycle > 255:
            raise _Decline
        for _ in range(cycle):
            se()
    elif poc_type != 2:
        raise _Decline
    ue()  # max_num_ref_frames
    pos += 1  # gaps_in_frame_num_value_allowed_flag
    ue()  # pic_width_in_mbs_minus1
    ue()  # pic_height_in_map_units_minus1
    if not u(1):  # frame_mbs_only_flag
        pos += 1
    pos += 1  # direct_8x8_inference_flag
    if u(1):  # frame_cropping_flag
        ue()
        ue()
        ue()
        ue()
    if not u(1) or not u(1):  # vui_parameters_present_flag, aspect_ratio_info_present_flag
        return None
    idc = u(8)
    if idc == EXTENDED_SAR:
        h, v = u(16), u(16)
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

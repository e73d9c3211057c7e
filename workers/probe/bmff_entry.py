"""``stsd`` sample entries: the codec, coded dimensions, ``pasp``, the SPS's SAR, audio format.

Visual entries (ISO/IEC 14496-12 12.1.3) have 78 bytes of fixed fields after the box header,
then child boxes (``avcC``, ``hvcC``, ``pasp`` ...). Audio entries have 28 bytes; QuickTime
sound description version 1 adds 16 and version 2 replaces the rate/channel fields with
its own 36 bytes. Encrypted entries (``encv``/``enca``) name the original format in
``sinf/frma``.
"""

from __future__ import annotations

import struct

import msgspec

from workers.probe.bmff_boxes import Box, children, find, fourcc, full_box, need_bytes, walk
from workers.probe.h26x import hevc_sps_sar
from workers.probe.h26x_sar import h264_sps_sar
from workers.probe.media import ProbeError

VIDEO_CODECS = {
    "avc1": "h264", "avc3": "h264", "hvc1": "hevc", "hev1": "hevc", "mp4v": "mpeg4",
    "av01": "av1", "vp09": "vp9", "vp08": "vp8", "mjpg": "mjpeg", "jpeg": "mjpeg",
    "apch": "prores", "apcn": "prores", "apcs": "prores", "apco": "prores", "ap4h": "prores",
    "s263": "h263", "h263": "h263", "dvh1": "hevc", "dvhe": "hevc",
}  # fmt: skip
AUDIO_CODECS = {
    "mp4a": "aac", "alac": "alac", ".mp3": "mp3", "Opus": "opus", "fLaC": "flac",
    "ac-3": "ac3", "ec-3": "eac3", "samr": "amr_nb", "sawb": "amr_wb", "sowt": "pcm",
    "twos": "pcm", "lpcm": "pcm", "in24": "pcm", "in32": "pcm", "fl32": "pcm", "fl64": "pcm",
    "ipcm": "pcm", "fpcm": "pcm", "ulaw": "pcm_mulaw", "alaw": "pcm_alaw",
}  # fmt: skip
# MPEG-4 objectTypeIndication (esds DecoderConfigDescriptor) -> codec
_ESDS_OTI = {0x40: "aac", 0x66: "aac", 0x67: "aac", 0x68: "aac", 0x69: "mp3", 0x6B: "mp3", 0xA5: "ac3"}
# AudioSpecificConfig channelConfiguration -> channel count (0 = in the program config element)
_AAC_CHANNELS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8}
_VISUAL_FIXED = 78
_AUDIO_FIXED = 28
_U16 = struct.Struct(">H")
_SIZE = struct.Struct(">HH")
_U32 = struct.Struct(">I")


class SampleEntry(msgspec.Struct, kw_only=True):
    """What the first sample description says."""

    fourcc: str
    codec: str
    width: int | None = None
    height: int | None = None
    sar_pasp: tuple[int, int] | None = None
    sar_vui: tuple[int, int] | None = None
    sample_rate: int | None = None
    channels: int | None = None
    bit_depth: int | None = None


def _original_format(data: bytes, box: Box, body: int, base: int) -> str | None:
    """``sinf/frma`` of a protected entry: the fourcc the content was before encryption."""
    for child in children(data, body, box.end, base, "{} entry", box.type):
        if child.type == "sinf":
            frma = find(data, child.payload, child.end, base, "sinf").get("frma")
            if frma is not None and frma.end - frma.payload >= 4:
                return fourcc(data[frma.payload : frma.payload + 4])
    return None


def _nal_list(data: bytes, at: int, count: int, box: Box, base: int) -> tuple[list[bytes], int]:
    nals, end = [], box.end
    for _ in range(count):
        if at + 2 > end:
            raise ProbeError(
                f"{box.type} at offset {base + box.start}: parameter set length runs past the box end"
            )
        n = _U16.unpack_from(data, at)[0]
        if at + 2 + n > end:
            raise ProbeError(
                f"{box.type} at offset {base + box.start}: parameter set of {n} bytes runs past the box end"
            )
        nals.append(data[at + 2 : at + 2 + n])
        at += 2 + n
    return nals, at


def avcc_sar(data: bytes, box: Box, base: int) -> tuple[int, int] | None:
    need_bytes(box, base, box.payload, 6, "avcC header")
    count = data[box.payload + 5] & 0x1F
    sps, _ = _nal_list(data, box.payload + 6, count, box, base)
    return h264_sps_sar(sps[0]) if sps else None


def hvcc_sar(data: bytes, box: Box, base: int) -> tuple[int, int] | None:
    need_bytes(box, base, box.payload, 23, "hvcC header")
    at, arrays = box.payload + 23, data[box.payload + 22]
    for _ in range(arrays):
        if at + 3 > box.end:
            raise ProbeError(f"hvcC at offset {base + box.start}: NAL array header runs past the box end")
        nal_type, count = data[at] & 0x3F, _U16.unpack_from(data, at + 1)[0]
        nals, at = _nal_list(data, at + 3, count, box, base)
        if nal_type == 33 and nals:
            return hevc_sps_sar(nals[0])
    return None


def _esds(data: bytes, box: Box) -> tuple[str | None, int | None]:
    """``(codec, channels)`` from ``esds``: the DecoderConfigDescriptor's objectTypeIndication
    and, for AAC, the AudioSpecificConfig's channelConfiguration (the sample entry's channel
    count is a fixed template value of 2 in MP4 files)."""
    at, codec, channels = box.payload + 4, None, None
    while at < box.end:
        tag, at = data[at], at + 1
        length = 0
        for _ in range(4):
            if at >= box.end:
                return codec, channels
            b, at = data[at], at + 1
            length = (length << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        if tag == 3:  # ES_Descriptor: ES_ID(2) flags(1) [dependsOn(2)] [URL] [OCR_ES_Id(2)], children
            if at + 3 > box.end:
                break
            flags = data[at + 2]
            at += 3 + (2 if flags & 0x80 else 0)
            if flags & 0x40 and at < box.end:
                at += 1 + data[at]
            at += 2 if flags & 0x20 else 0
            continue
        if tag == 4:  # DecoderConfigDescriptor: OTI(1) stream(1) buffer(3) rates(8), children
            codec = _ESDS_OTI.get(data[at]) if at < box.end else None
            at += 13
            continue
        if tag == 5 and codec == "aac" and length >= 2 and at + 2 <= box.end:
            asc = int.from_bytes(data[at : at + 2], "big")
            object_type, rate_index = asc >> 11, (asc >> 7) & 15
            config = (asc >> 3) & 15
            if object_type != 31 and rate_index != 15:
                channels = _AAC_CHANNELS.get(config)
        at += length
    return codec, channels


def _visual(data: bytes, box: Box, base: int, kind: str) -> SampleEntry:
    need_bytes(box, base, box.payload, _VISUAL_FIXED, "visual sample entry fields")
    width, height = _SIZE.unpack_from(data, box.payload + 24)
    body = box.payload + _VISUAL_FIXED
    if kind in ("encv", "resv"):
        kind = _original_format(data, box, body, base) or kind
    entry = SampleEntry(fourcc=kind, codec=VIDEO_CODECS.get(kind, kind.strip()), width=width, height=height)
    boxes, error = walk(data, body, box.end, base, "{} sample entry", box.type)
    for child in boxes:
        if child.type == "pasp":
            need_bytes(child, base, child.payload, 8, "pasp spacing")
            h, v = _U32.unpack_from(data, child.payload)[0], _U32.unpack_from(data, child.payload + 4)[0]
            if h == 0 or v == 0:
                raise ProbeError(f"pasp at offset {base + child.start}: spacing {h}:{v} has a zero")
            entry.sar_pasp = (h, v)
        elif child.type == "avcC" and entry.codec == "h264":
            entry.sar_vui = avcc_sar(data, child, base)
        elif child.type == "hvcC" and entry.codec == "hevc":
            entry.sar_vui = hvcc_sar(data, child, base)
    if error is not None:
        raise error
    return entry


def _audio(data: bytes, box: Box, base: int, kind: str) -> SampleEntry:
    need_bytes(box, base, box.payload, _AUDIO_FIXED, "audio sample entry fields")
    p = box.payload
    version = _U16.unpack_from(data, p + 8)[0]
    channels, bits = _U16.unpack_from(data, p + 16)[0], _U16.unpack_from(data, p + 18)[0]
    rate = _U32.unpack_from(data, p + 24)[0] >> 16
    body = p + _AUDIO_FIXED
    if version == 1:
        body += 16
    elif version == 2:
        need_bytes(box, base, p, _AUDIO_FIXED + 36, "QuickTime v2 sound description")
        rate = round(struct.unpack_from(">d", data, p + 32)[0])
        channels = _U32.unpack_from(data, p + 40)[0]
        bits = _U32.unpack_from(data, p + 48)[0]
        body += 36
    if kind == "enca":
        kind = _original_format(data, box, min(body, box.end), base) or kind
    codec = AUDIO_CODECS.get(kind, kind.strip())
    if kind == "mp4a" and body < box.end:
        esds = find(data, body, box.end, base, "{} sample entry", box.type).get("esds")
        if esds is not None:
            esds_codec, esds_channels = _esds(data, esds)
            codec, channels = esds_codec or codec, esds_channels or channels
            if codec == "mp3":
                channels = None  # the entry holds the template 2; the mode is only in mdat frames
    return SampleEntry(
        fourcc=kind,
        codec=codec,
        sample_rate=rate or None,
        channels=channels or None,
        bit_depth=bits if codec in ("pcm", "alac", "flac") and bits else None,
    )


def parse_stsd(data: bytes, stsd: Box, base: int, handler: str) -> SampleEntry | None:
    """The first sample entry of ``stsd``, read as video (``vide``) or audio (``soun``)."""
    _, _, body = full_box(data, stsd, base, 4)
    if _U32.unpack_from(data, body)[0] == 0:
        return None
    if body + 4 >= stsd.end:
        raise ProbeError(f"stsd at offset {base + stsd.start}: entry count > 0 but no entry")
    entries, error = walk(data, body + 4, stsd.end, base, "stsd")
    if not entries:
        assert error is not None  # a non-empty span holds a box or a bad header
        raise error
    entry = entries[0]
    if handler == "vide":
        return _visual(data, entry, base, entry.type)
    if handler == "soun":
        return _audio(data, entry, base, entry.type)
    return SampleEntry(fourcc=entry.type, codec=entry.type.strip())

"""workers.reads.paths: which local files an entry may make the probe read (issue 14's gap)."""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.reads import ObjectGone
from workers.reads.file import FileReader
from workers.reads.paths import PathFence, PathFenced, PathRefusal, inside, normal, open_fenced

ROOT = "/srv/media"
FENCE = PathFence((ROOT,))


def refused(r: PathRefusal | None) -> PathRefusal:
    assert r is not None, "expected a refusal"
    assert r.rule == "path.fenced"
    return r


class TestPure:
    @pytest.mark.parametrize(
        ("path", "root", "expected"),
        [
            ("/srv/media", "/srv/media", True),
            ("/srv/media/a.png", "/srv/media", True),
            ("/srv/media/sub/b.png", "/srv/media", True),
            ("/srv/media-other/a.png", "/srv/media", False),  # a sibling sharing a prefix
            ("/srv/medi", "/srv/media", False),
            ("/srv", "/srv/media", False),
            ("/etc/shadow", "/", True),
        ],
    )
    def test_inside_compares_whole_components(self, path: str, root: str, expected: bool) -> None:
        assert inside(path, root) is expected

    @pytest.mark.parametrize(
        "resolved",
        ["/etc/shadow", "/srv/media/../../etc/shadow", "/srv/media-other/a.png", "/srv", "/"],
    )
    def test_outside_is_refused_naming_the_path_and_the_roots(self, resolved: str) -> None:
        r = refused(FENCE.refusal("entry.png", resolved))
        assert r.path == "entry.png" and r.roots == (ROOT,)
        assert ROOT in r.reason and "probe.allowed_roots" in r.reason
        assert str(r).startswith("path.fenced: entry.png: ")

    def test_the_resolved_path_is_named_when_it_differs(self) -> None:
        r = refused(FENCE.refusal("/srv/media/link.png", "/etc/shadow"))
        assert "resolves to /etc/shadow" in r.reason
        same = refused(FENCE.refusal("/etc/shadow", "/etc/shadow"))
        assert "resolves to" not in same.reason

    @pytest.mark.parametrize("resolved", ["/srv/media/a.png", "/srv/media/x/../a.png", "//srv/media/a"])
    def test_inside_is_admitted(self, resolved: str) -> None:
        assert FENCE.refusal("a.png", resolved) is None

    def test_relative_nul_and_no_roots_are_refused(self) -> None:
        assert "absolute" in refused(FENCE.refusal("a", "a")).reason
        assert "NUL" in refused(FENCE.refusal("a\x00b", "/srv/media/a\x00b")).reason
        assert "no local path is allowed" in refused(PathFence(()).refusal("a", "/srv/media/a")).reason

    def test_a_root_of_slash_admits_everything_absolute(self) -> None:
        assert PathFence(("/",)).refusal("/etc/shadow", "/etc/shadow") is None


SEGMENT = st.sampled_from(["..", ".", "", "a", "b", "media", "srv", "media-other", "..."])


def model_inside(segments: list[str], root_parts: list[str]) -> bool:
    """An independent model: walk the segments from the root as a kernel would without symlinks;
    the path stays inside iff the walk never ends above the root."""
    stack = list(root_parts)
    for s in segments:
        if s in ("", "."):
            continue
        if s == "..":
            if stack:
                stack.pop()
        else:
            stack.append(s)
    return stack[: len(root_parts)] == root_parts


@given(st.lists(SEGMENT, max_size=12))
def test_traversal_strings_agree_with_a_model_walk(segments: list[str]) -> None:
    """Any mix of ``..``, ``.``, empty and named segments below the root: admitted exactly when a
    component-by-component walk stays inside the root."""
    path = ROOT + "/" + "/".join(segments)
    lexical = normal(path)  # what realpath gives when no symlink is involved
    verdict = FENCE.refusal(path, lexical) is None
    # a walk above the root can come back in through its own name (/srv/media/../media/a)
    assert verdict is model_inside(segments, ["srv", "media"])


@given(st.integers(min_value=3, max_value=20), st.sampled_from(["etc/shadow", "root/.ssh/id_rsa", "x"]))
def test_enough_dot_dots_always_escape(depth: int, target: str) -> None:
    path = ROOT + "/" + "../" * depth + target
    r = refused(FENCE.refusal(path, posixpath.normpath(path)))
    assert r.resolved == posixpath.normpath(path)


@given(st.text(min_size=1, max_size=40))
def test_any_string_gives_a_verdict_not_an_exception(text: str) -> None:
    result = FENCE.refusal(text, text)
    assert result is None or result.rule == "path.fenced"


class TestOnDisk:
    """The I/O edge: realpath, the open, and the re-check of what was opened, in a tmp dir."""

    @pytest.fixture
    def layout(self, tmp_path: Path) -> tuple[PathFence, Path, Path]:
        root, outside = tmp_path / "root", tmp_path / "outside"
        root.mkdir()
        outside.mkdir()
        (root / "in.png").write_bytes(b"inside")
        (outside / "secret.txt").write_bytes(b"secret")
        return PathFence.of([str(root)]), root, outside

    def test_a_file_under_the_root_opens(self, layout: tuple[PathFence, Path, Path]) -> None:
        fence, root, _ = layout
        fd = open_fenced(fence, str(root / "sub" / ".." / "in.png"))
        try:
            assert os.pread(fd, 10, 0) == b"inside"
        finally:
            os.close(fd)

    def test_dot_dot_out_of_the_root_is_refused(self, layout: tuple[PathFence, Path, Path]) -> None:
        fence, root, outside = layout
        with pytest.raises(PathFenced) as e:
            open_fenced(fence, str(root / ".." / "outside" / "secret.txt"))
        assert e.value.rule == "path.fenced"
        assert e.value.actual == {
            "path": str(root / ".." / "outside" / "secret.txt"),
            "resolved": str((outside / "secret.txt").resolve()),
            "allowed_roots": [str(root.resolve())],
        }

    def test_a_symlink_pointing_out_is_followed_and_refused(
        self, layout: tuple[PathFence, Path, Path]
    ) -> None:
        fence, root, outside = layout
        (root / "link.png").symlink_to(outside / "secret.txt")
        (root / "dir").symlink_to(outside, target_is_directory=True)
        for p in (root / "link.png", root / "dir" / "secret.txt"):
            with pytest.raises(PathFenced, match="resolves to"):
                open_fenced(fence, str(p))

    def test_a_symlink_staying_inside_and_a_symlinked_root_are_fine(self, tmp_path: Path) -> None:
        real = tmp_path / "real"
        real.mkdir()
        (real / "a.png").write_bytes(b"a")
        (real / "alias.png").symlink_to(real / "a.png")
        (tmp_path / "root-link").symlink_to(real, target_is_directory=True)
        fence = PathFence.of([str(tmp_path / "root-link")])  # the root counts as its target
        assert fence.roots == (str(real.resolve()),)
        for p in (real / "alias.png", tmp_path / "root-link" / "a.png"):
            os.close(open_fenced(fence, str(p)))

    def test_absolute_system_paths_are_refused_before_they_are_opened(
        self, layout: tuple[PathFence, Path, Path]
    ) -> None:
        fence, _, _ = layout
        for p in ("/etc/shadow", "/etc/passwd", "/proc/self/environ", "/nonexistent/x"):
            with pytest.raises(PathFenced):  # refused whether or not it exists: no existence oracle
                open_fenced(fence, p)

    def test_a_missing_file_inside_is_gone_not_fenced(self, layout: tuple[PathFence, Path, Path]) -> None:
        fence, root, _ = layout
        with pytest.raises(FileNotFoundError):
            open_fenced(fence, str(root / "missing.png"))

    def test_a_fifo_inside_is_refused_without_blocking(self, layout: tuple[PathFence, Path, Path]) -> None:
        fence, root, _ = layout
        os.mkfifo(root / "pipe.png")
        with pytest.raises(PathFenced, match="not a regular file"):
            open_fenced(fence, str(root / "pipe.png"))

    def test_a_directory_swapped_for_a_symlink_after_the_check_is_caught(
        self, layout: tuple[PathFence, Path, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The check saw ``root/dir/secret.txt`` (as if ``dir`` were a real folder then); by the open
        ``dir`` points outside: what the kernel opened is checked again and refused."""
        if not os.path.isdir("/proc/self/fd"):
            pytest.skip("no /proc/self/fd here")
        fence, root, outside = layout
        (root / "dir").symlink_to(outside, target_is_directory=True)
        monkeypatch.setattr("workers.reads.paths.resolve", lambda p: p)  # the stale view of the check
        with pytest.raises(PathFenced) as e:
            open_fenced(fence, str(root / "dir" / "secret.txt"))
        assert e.value.refusal.resolved == str((outside / "secret.txt").resolve())


async def test_file_reader_with_a_fence(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"abc")
    fence = PathFence.of([str(tmp_path)])
    async with FileReader(str(tmp_path / "a.png"), fence=fence) as r:
        assert await r.size() == 3 and await r.read(0, 3) == b"abc"
    with pytest.raises(ObjectGone):
        await FileReader(str(tmp_path / "b.png"), fence=fence).size()
    with pytest.raises(PathFenced):
        await FileReader("/etc/hostname", fence=fence).size()


TARGETS = st.sampled_from(
    ["in0", "sub/in1", "sub", "../outside/out0", "../outside", "sub/../../outside/out0", "OUT_ABS", "IN_ABS"]
)


@settings(max_examples=60, deadline=None)
@given(
    links=st.lists(st.tuples(st.sampled_from(["", "sub/"]), TARGETS | st.integers(0, 5)), max_size=6),
    pick=st.tuples(st.integers(0, 7), st.sampled_from(["", "/in1", "/out0", "/../outside/out0"])),
)
def test_random_symlink_layouts_never_open_a_file_outside(
    links: list[tuple[str, str | int]], pick: tuple[int, str]
) -> None:
    """Symlinks in a tmp dir, pointing inside, outside, at folders, at each other (chains, loops):
    whatever path is asked for, an opened file is always one of the inside files (its content says
    so: an independent oracle), and every failure is a refusal or the OS's own error."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root, outside = base / "root", base / "outside"
        (root / "sub").mkdir(parents=True)
        outside.mkdir()
        (root / "in0").write_bytes(b"IN0")
        (root / "sub" / "in1").write_bytes(b"IN1")
        (outside / "out0").write_bytes(b"OUT")
        names = []
        for i, (where, target) in enumerate(links):
            name = f"{where}l{i}"
            if isinstance(target, int):
                to = f"l{target}"  # another link (maybe not made yet, maybe itself: a loop)
            else:
                to = {"OUT_ABS": str(outside / "out0"), "IN_ABS": str(root / "in0")}.get(target, target)
            (root / name).symlink_to(to)
            names.append(name)
        index, tail = pick
        asked = str(root / (names[index % len(names)] if names else "in0")) + tail
        fence = PathFence.of([str(root)])
        try:
            fd = open_fenced(fence, asked)
        except PathFenced as e:
            assert e.rule == "path.fenced"
            return
        except OSError:  # dangling, a loop, not a folder: the OS refused, nothing was read
            return
        try:
            assert os.pread(fd, 3, 0) in (b"IN0", b"IN1"), asked
        finally:
            os.close(fd)

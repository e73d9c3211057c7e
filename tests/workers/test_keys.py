"""workers.payloads.keys: global keys are pure, Labelbox-valid and collision-resistant."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from workers.payloads.keys import MAX_LEN, check_key, key_from, make_key, render

FIELDS = ("bucket", "key", "version", "etag", "origin", "path", "url")
ALLOWED = string.ascii_letters + string.digits + "!_.*'()&$@=;/:+ ,?-"

field_values = st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=120), min_size=1)
templates = st.lists(
    st.one_of(
        st.sampled_from([f"{{{f}}}" for f in FIELDS]),
        st.text(alphabet=st.characters(exclude_characters="{}")),
    ),
    min_size=1,
    max_size=5,
).map("".join)


def key_of(raw: str) -> str:
    return make_key("{key}", {"key": raw})


class TestMakeKeyProperties:
    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(template=templates, fields=field_values)
    def test_result_is_always_a_valid_labelbox_key(self, template: str, fields: dict[str, str]) -> None:
        """Any template and unicode field values give a key check_key accepts, or ValueError if blank."""
        try:
            key = make_key(template, fields)
        except ValueError as e:
            assert not render(template, fields).strip()
            assert "renders empty" in str(e)
            return
        assert check_key(key) is None, key
        assert 0 < len(key) <= MAX_LEN

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(template=templates, fields=field_values)
    def test_deterministic(self, template: str, fields: dict[str, str]) -> None:
        """The same identity always gives the same key."""
        assume(render(template, fields).strip())
        assert make_key(template, fields) == make_key(template, dict(fields))

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(raw=st.text(alphabet=ALLOWED, min_size=1, max_size=MAX_LEN))
    def test_valid_keys_are_returned_unchanged(self, raw: str) -> None:
        """A key that already satisfies Labelbox is used as it is."""
        assume(raw == raw.strip())
        assert key_of(raw) == raw

    @settings(max_examples=150, deadline=None, derandomize=True)
    @given(a=st.text(min_size=1, max_size=260), b=st.text(min_size=1, max_size=260))
    def test_distinct_identities_get_distinct_keys(self, a: str, b: str) -> None:
        """Two different raw keys never share a global key, even when they sanitise to the same text."""
        assume(a != b and a.strip() and b.strip())
        assert key_of(a) != key_of(b)

    @pytest.mark.parametrize(
        ("a", "b"),
        [
            ("photo#1.jpg", "photo%1.jpg"),
            ("é.mp4", "è.mp4"),
            ("a\tb", "a\nb"),
            (" a.mp4", "a.mp4 "),
            ("x" * 250 + "1", "x" * 250 + "2"),
        ],
    )
    def test_colliding_sanitisations_are_told_apart(self, a: str, b: str) -> None:
        """Keys whose cleaned or cut form is equal differ by their digest suffix."""
        ka, kb = key_of(a), key_of(b)
        assert ka != kb
        assert check_key(ka) is None and check_key(kb) is None

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(raw=st.text(max_size=240))
    def test_key_from_a_rendered_key_template_is_make_key(self, raw: str) -> None:
        """The default template's shortcut (the object key is the rendering) gives make_key's key."""
        if not raw.strip():
            with pytest.raises(ValueError, match="renders empty"):
                key_from(raw, "{key}")
            return
        assert key_from(raw, "{key}") == key_of(raw)

    def test_keys_keep_their_case(self) -> None:
        """Keys keep the object's spelling; case-only collisions are caught at intake (see
        tests/pipeline/test_pipeline.py::TestFlow::test_case_only_collision_is_dead_lettered)."""
        assert key_of("Cat.jpg") == "Cat.jpg" and key_of("cat.jpg") == "cat.jpg"


class TestMakeKeyExamples:
    def test_template_fields_are_filled(self) -> None:
        """Fields are substituted by name; missing ones render empty."""
        assert make_key("{bucket}/{key}@{version}", {"bucket": "b", "key": "k.mp4"}) == "b/k.mp4@"

    def test_sanitised_key_keeps_readable_prefix_and_digest(self) -> None:
        """Bad characters become ``_`` and a 12-hex digest of the raw key is appended."""
        key = key_of("clips/a#b|c.mp4")
        assert key.startswith("clips/a_b_c.mp4-")
        assert len(key.rsplit("-", 1)[1]) == 12
        assert all(c in "0123456789abcdef" for c in key.rsplit("-", 1)[1])

    def test_long_key_is_cut_to_200_with_suffix(self) -> None:
        """An over-long key is cut and suffixed so it stays within 200 characters."""
        key = key_of("k" * 500)
        assert len(key) == MAX_LEN
        assert key.startswith("k" * 187 + "-")

    def test_key_of_exactly_200_valid_characters_is_unchanged(self) -> None:
        """200 characters is within the limit."""
        assert key_of("v" * 200) == "v" * 200

    def test_cut_does_not_leave_trailing_space_before_suffix(self) -> None:
        """When the cut lands after spaces, they are dropped before the suffix."""
        key = key_of("a" + " " * 300 + "z")
        assert key.startswith("a-")
        assert check_key(key) is None

    @pytest.mark.parametrize("template", ["{key}", "{version}", "  {key}  "])
    def test_blank_rendering_is_an_error_naming_the_template(self, template: str) -> None:
        """A template that renders blank for an object is refused with the template named."""
        with pytest.raises(ValueError, match="renders empty"):
            make_key(template, {"key": "   "})


class TestCheckKey:
    def test_valid_key(self) -> None:
        """A key of allowed characters within 200 is fine."""
        assert check_key("https://bucket.s3.amazonaws.com/a/b c(1).mp4?x=1&y=2") is None

    @pytest.mark.parametrize("key", ["", "  ", " a", "a "])
    def test_whitespace_rule(self, key: str) -> None:
        """Blank or untrimmed keys break the whitespace rule, which shows the key."""
        v = check_key(key)
        assert v is not None and v.rule == "labelbox.global_key.whitespace"
        assert v.actual == key

    def test_length_rule_names_limit_and_length(self) -> None:
        """A 201-character key names the limit and its length."""
        v = check_key("a" * 201)
        assert v is not None and v.rule == "labelbox.global_key.length"
        assert v.expected == "<= 200" and v.actual == 201

    def test_characters_rule_lists_each_offending_character_once(self) -> None:
        """The characters rule names exactly the characters that are not allowed, sorted, once each."""
        v = check_key("a#b#c|d<é>")
        assert v is not None and v.rule == "labelbox.global_key.characters"
        assert v.actual == "#<>|é"
        assert "A-Z" in v.expected

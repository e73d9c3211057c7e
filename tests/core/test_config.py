"""daemon.core.config: a bad configuration fails at start, naming the key path and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daemon.core.config import ConfigError, from_dict, load, resolve
from daemon.core.secrets import SecretMissing, load_secret

MINIMAL: dict[str, Any] = {"source": {"type": "spool", "path": "media"}}


def config_error(raw: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as e:
        from_dict(raw, environ=environ or {})
    return str(e.value)


def with_minimal(**sections: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {k: dict(v) for k, v in MINIMAL.items()}
    for name, table in sections.items():
        raw.setdefault(name, {}).update(table)
    return raw


class TestUnknownKeys:
    def test_unknown_key_in_a_section_names_the_full_path(self) -> None:
        """A typo inside a section is reported as ``section.key: unknown key``."""
        assert config_error(with_minimal(sink={"bogus": 1})) == "sink.bogus: unknown key"

    def test_unknown_top_level_key_is_named(self) -> None:
        """An unknown top-level table or key is reported by its bare name."""
        assert config_error({**MINIMAL, "bogus": {"a": 1}}) == "bogus: unknown key"

    def test_base_dir_is_not_a_config_key(self) -> None:
        """``base_dir`` is internal (the file's folder), so writing it in TOML is refused."""
        assert config_error({**MINIMAL, "base_dir": "/etc"}) == "base_dir: unknown key"

    def test_unknown_key_from_the_environment_is_refused_with_its_path(self) -> None:
        """``INGESTD_SINK_BOGUS`` is an unknown key like a typo in the file."""
        assert config_error(MINIMAL, {"INGESTD_SINK_BOGUS": "1"}) == "sink.bogus: unknown key"


class TestTypes:
    def test_wrong_scalar_type_names_key_and_reason(self) -> None:
        """A string where an int belongs names the key and what was expected."""
        msg = config_error(with_minimal(sink={"max_items": "many"}))
        assert msg.startswith("sink.max_items: ")
        assert "Expected `int`" in msg and "`str`" in msg

    def test_bool_is_not_accepted_as_an_int(self) -> None:
        """``max_items = true`` is a type error, not the number 1."""
        assert config_error(with_minimal(sink={"max_items": True})).startswith("sink.max_items: ")

    def test_section_given_as_scalar_is_refused(self) -> None:
        """``source = "x"`` names the section and says an object (table) is expected."""
        msg = config_error({"source": "x"})
        assert msg.startswith("source: ") and "object" in msg

    def test_invalid_enum_value_is_named(self) -> None:
        """An unsupported source type names the key and the value."""
        msg = config_error({"source": {"type": "ftp", "path": "a"}})
        assert msg.startswith("source.type: ") and "'ftp'" in msg

    def test_wrong_value_type_inside_a_table_names_the_table(self) -> None:
        """A non-string header value names the ``sink.headers`` table."""
        assert config_error(with_minimal(sink={"headers": {"X-A": 1}})).startswith("sink.headers")

    def test_defaults_fill_absent_sections(self) -> None:
        """A config with only the source gets documented defaults for the rest."""
        cfg = from_dict(MINIMAL, environ={})
        assert cfg.target.platform == "labelbox"
        assert cfg.sink.type == "files"
        assert cfg.target.global_key_template == "{key}"
        assert cfg.target.accept_kinds == ["video", "image", "audio"]


class TestEnvironmentOverrides:
    def test_scalar_override_is_converted_to_the_key_type(self) -> None:
        """``INGESTD_SINK_MAX_ITEMS=12`` becomes the int 12."""
        cfg = from_dict(MINIMAL, environ={"INGESTD_SINK_MAX_ITEMS": "12"})
        assert cfg.sink.max_items == 12

    def test_override_wins_over_the_file(self) -> None:
        """An environment value replaces the value written in the file."""
        cfg = from_dict(with_minimal(sink={"max_items": 5}), environ={"INGESTD_SINK_MAX_ITEMS": "7"})
        assert cfg.sink.max_items == 7

    def test_key_with_underscores_is_addressed_after_the_section(self) -> None:
        """``INGESTD_SOURCE_URL_PREFIX`` sets ``source.url_prefix``."""
        cfg = from_dict(MINIMAL, environ={"INGESTD_SOURCE_URL_PREFIX": "https://cdn.example.com/"})
        assert cfg.source.url_prefix == "https://cdn.example.com/"

    def test_boolean_override(self) -> None:
        """``true`` in the environment sets a bool key."""
        cfg = from_dict(MINIMAL, environ={"INGESTD_TARGET_STRICT_ACCESS": "true"})
        assert cfg.target.strict_access is True

    def test_bad_boolean_override_names_the_key(self) -> None:
        """A value that is not a bool is reported against the key it overrides."""
        msg = config_error(MINIMAL, {"INGESTD_TARGET_STRICT_ACCESS": "maybe"})
        assert msg.startswith("target.strict_access: ")

    def test_bad_int_override_names_the_key(self) -> None:
        """A non-numeric override of an int key names the key."""
        assert config_error(MINIMAL, {"INGESTD_SINK_MAX_ITEMS": "abc"}).startswith("sink.max_items: ")

    def test_list_given_as_toml_inline_array(self) -> None:
        """A list key takes a TOML inline array from the environment."""
        cfg = from_dict(MINIMAL, environ={"INGESTD_TARGET_ACCEPT_KINDS": '["video", "audio"]'})
        assert cfg.target.accept_kinds == ["video", "audio"]

    def test_table_given_as_toml_inline_table(self) -> None:
        """A table key takes a TOML inline table from the environment."""
        cfg = from_dict(MINIMAL, environ={"INGESTD_SINK_HEADERS": '{ X-Team = "vision", a = "b" }'})
        assert cfg.sink.headers == {"X-Team": "vision", "a": "b"}

    def test_malformed_inline_value_names_the_key(self) -> None:
        """An unclosed inline array is refused naming the key and saying it is not TOML."""
        msg = config_error(MINIMAL, {"INGESTD_TARGET_ACCEPT_KINDS": '["video"'})
        assert msg.startswith("target.accept_kinds: ") and "not TOML" in msg

    def test_inline_value_of_the_wrong_shape_names_the_key(self) -> None:
        """A table where a list belongs is a type error on that key."""
        msg = config_error(MINIMAL, {"INGESTD_TARGET_ACCEPT_KINDS": '{a = "b"}'})
        assert msg.startswith("target.accept_kinds")

    def test_unrelated_and_secret_variables_are_ignored(self) -> None:
        """Variables outside the config namespace, or secrets, do not touch the config."""
        env = {
            "INGESTD_SECRET_API_KEY": "s3cr3t",
            "INGESTD_NOSUCHSECTION_X": "1",
            "INGESTD_SINK": "x",
            "PATH": "/bin",
        }
        assert from_dict(MINIMAL, environ=env) == from_dict(MINIMAL, environ={})

    def test_override_into_a_section_absent_from_the_file(self) -> None:
        """An override creates the section's table when the file has none."""
        cfg = from_dict(MINIMAL, environ={"INGESTD_LEDGER_PATH": "/var/lib/ingestd/l.db"})
        assert cfg.ledger.path == "/var/lib/ingestd/l.db"

    def test_load_reads_os_environ_by_default(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """``load`` applies the process environment when none is passed."""
        f = tmp_path / "c.toml"
        f.write_text('[source]\npath = "m"\n')
        monkeypatch.setenv("INGESTD_SINK_LINGER_MS", "25")
        assert load(f).sink.linger_ms == 25


class TestRequiredKeys:
    @pytest.mark.parametrize(
        ("source", "key"),
        [
            ({"type": "spool"}, "source.path"),
            ({"type": "manifest"}, "source.path"),
            ({"type": "sqs"}, "source.queue_url"),
            ({"type": "s3-listing"}, "source.bucket"),
            ({"type": "redis", "redis_url": "redis://127.0.0.1"}, "source.redis_url"),
        ],
    )
    def test_source_type_requires_its_keys(self, source: dict[str, Any], key: str) -> None:
        """Each source type names the key it cannot run without."""
        msg = config_error({"source": source})
        assert msg.startswith(f"{key}: ") and "required" in msg

    def test_complete_sources_are_accepted(self) -> None:
        """Each source type with its required keys loads."""
        for source in (
            {"type": "sqs", "queue_url": "https://sqs.us-east-1.amazonaws.com/1/q"},
            {"type": "s3-listing", "bucket": "b"},
            {"type": "redis", "redis_url": "redis://127.0.0.1", "stream": "s"},
        ):
            assert from_dict({"source": source}, environ={}).source.type == source["type"]

    def test_http_sink_requires_an_http_url(self) -> None:
        """The http sink without an http(s) URL names ``sink.url``."""
        msg = config_error(with_minimal(sink={"type": "http", "url": "ftp://x"}))
        assert msg.startswith("sink.url: ") and "'ftp://x'" in msg
        cfg = from_dict(with_minimal(sink={"type": "http", "url": "https://h/x"}), environ={})
        assert cfg.sink.url == "https://h/x"


class TestRanges:
    @pytest.mark.parametrize(
        ("section", "key", "value", "needle"),
        [
            ("source", "wait_time_seconds", 21, "0..20, got 21"),
            ("source", "wait_time_seconds", -1, "0..20, got -1"),
            ("source", "receivers", 0, ">= 1, got 0"),
            ("source", "url_prefix", "ftp://x/", "http(s) URL"),
            ("target", "url_expires", 0, "1..604800"),
            ("target", "url_expires", 604801, "got 604801"),
            ("sink", "max_items", 0, ">= 1, got 0"),
            ("sink", "max_bytes", 1023, ">= 1024, got 1023"),
            ("sink", "max_concurrency", 0, ">= 1"),
            ("sink", "requests_per_second", 0, "> 0"),
            ("sink", "retry_budget", 1.5, "0..1, got 1.5"),
            ("sink", "retry_budget", -0.1, "0..1"),
            ("sink", "linger_ms", -1, ">= 0, got -1"),
            ("pipeline", "queue_size", 0, ">= 1"),
            ("pipeline", "max_in_flight", 0, ">= 1"),
            ("probe", "head_bytes", 511, ">= 512, got 511"),
            ("probe", "concurrency", 0, ">= 1"),
            ("http", "listen", "localhost", "HOST:PORT"),
        ],
    )
    def test_out_of_range_value_names_key_bound_and_value(
        self, section: str, key: str, value: Any, needle: str
    ) -> None:
        """A value outside its range names the key, the allowed range and the value given."""
        msg = config_error(with_minimal(**{section: {key: value}}))
        assert msg.startswith(f"{section}.{key}: ")
        assert needle in msg

    @pytest.mark.parametrize(
        ("section", "key", "value"),
        [
            ("source", "wait_time_seconds", 0),
            ("source", "wait_time_seconds", 20),
            ("sink", "max_bytes", 1024),
            ("sink", "retry_budget", 0),
            ("sink", "retry_budget", 1),
            ("sink", "linger_ms", 0),
            ("probe", "head_bytes", 512),
            ("target", "url_expires", 604800),
            ("http", "listen", "127.0.0.1:9464"),
            ("http", "listen", "[::1]:9464"),
        ],
    )
    def test_bounds_are_inclusive(self, section: str, key: str, value: Any) -> None:
        """The documented limits themselves are accepted."""
        cfg = from_dict(with_minimal(**{section: {key: value}}), environ={})
        assert getattr(getattr(cfg, section), key) == value


class TestGlobalKeyTemplate:
    @pytest.mark.parametrize(
        "template",
        [
            "{key}",
            "{bucket}/{key}",
            "{bucket}/{key}@{version}",
            "x-{etag}-{origin}",
            "{path}",
            "{url}",
            "fixed",
        ],
    )
    def test_known_fields_are_accepted(self, template: str) -> None:
        """Templates built from the documented identity fields load."""
        cfg = from_dict(with_minimal(target={"global_key_template": template}), environ={})
        assert cfg.target.global_key_template == template

    def test_unknown_field_is_named_with_the_allowed_ones(self) -> None:
        """An unknown ``{field}`` is named, and the allowed fields are listed."""
        msg = config_error(with_minimal(target={"global_key_template": "{bucket}/{nope}"}))
        assert msg.startswith("target.global_key_template: ")
        assert "{nope}" in msg and "'key'" in msg

    @pytest.mark.parametrize("template", ["{key", "{0}", "{}", "{key!z}", "{key.upper}", "{key[0]}"])
    def test_malformed_template_is_a_config_error(self, template: str) -> None:
        """Broken braces, positional fields, bad conversions, attribute or index access fail at start."""
        assert config_error(with_minimal(target={"global_key_template": template})).startswith(
            "target.global_key_template: "
        )


class TestSecrets:
    def test_credentials_directory_comes_first(self, tmp_path: Path) -> None:
        """A file in $CREDENTIALS_DIRECTORY wins over the environment; whitespace is trimmed."""
        (tmp_path / "labelbox-api-key").write_text("from-file\n")
        env = {"CREDENTIALS_DIRECTORY": str(tmp_path), "INGESTD_SECRET_LABELBOX_API_KEY": "from-env"}
        assert load_secret("labelbox-api-key", env) == "from-file"

    def test_environment_variable_name_is_upper_snake_case(self, tmp_path: Path) -> None:
        """Without a credential file, ``INGESTD_SECRET_<NAME>`` (non-alnum -> ``_``) is used."""
        env = {"CREDENTIALS_DIRECTORY": str(tmp_path), "INGESTD_SECRET_ENCORD_SSH_KEY": "k"}
        assert load_secret("encord.ssh-key", env) == "k"

    def test_missing_secret_names_both_places_and_no_value(self, tmp_path: Path) -> None:
        """The error names the secret and where it was looked for, never any secret value around."""
        (tmp_path / "other").write_text("hunter2-other")
        env = {
            "CREDENTIALS_DIRECTORY": str(tmp_path),
            "INGESTD_SECRET_OTHER": "hunter2-env",
            "INGESTD_SECRET_API_KEYS": "hunter2-near-miss",
        }
        with pytest.raises(SecretMissing) as e:
            load_secret("api-key", env)
        msg = str(e.value)
        assert "'api-key'" in msg and "$INGESTD_SECRET_API_KEY" in msg and "CREDENTIALS_DIRECTORY" in msg
        assert "hunter2" not in msg

    def test_missing_secret_is_a_config_error(self) -> None:
        """Callers that catch ConfigError at start also catch a missing secret."""
        with pytest.raises(ConfigError):
            load_secret("x", {})

    def test_folder_named_like_the_secret_is_not_read(self, tmp_path: Path) -> None:
        """Only a regular file in the credentials folder counts."""
        (tmp_path / "token").mkdir()
        env = {"CREDENTIALS_DIRECTORY": str(tmp_path), "INGESTD_SECRET_TOKEN": "t"}
        assert load_secret("token", env) == "t"


class TestFileLoading:
    def test_relative_paths_resolve_from_the_config_folder(self, tmp_path: Path) -> None:
        """Relative paths in the file are resolved against the file's folder, absolute ones kept."""
        conf = tmp_path / "etc" / "ingestd.toml"
        conf.parent.mkdir()
        conf.write_text(
            '[source]\npath = "media"\n[ledger]\npath = "/var/lib/x.db"\n[sink]\npath = "../out"\n'
        )
        cfg = load(conf, environ={})
        assert resolve(cfg, cfg.source.path) == tmp_path / "etc" / "media"
        assert resolve(cfg, cfg.sink.path) == tmp_path / "etc" / ".." / "out"
        assert resolve(cfg, cfg.ledger.path) == Path("/var/lib/x.db")

    def test_invalid_toml_names_the_file(self, tmp_path: Path) -> None:
        """A syntax error names the file and says it is not valid TOML."""
        conf = tmp_path / "bad.toml"
        conf.write_text("[source\npath = 1\n")
        with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
            load(conf, environ={})

    def test_missing_file_is_a_config_error(self, tmp_path: Path) -> None:
        """A config path that does not exist is reported, not raised as OSError."""
        with pytest.raises(ConfigError, match="cannot read config"):
            load(tmp_path / "nope.toml", environ={})

    def test_errors_from_a_file_name_the_key(self, tmp_path: Path) -> None:
        """Validation errors of a loaded file carry the key path."""
        conf = tmp_path / "c.toml"
        conf.write_text('[source]\npath = "m"\n[sink]\nmax_itemz = 3\n')
        with pytest.raises(ConfigError, match=r"^sink\.max_itemz: unknown key$"):
            load(conf, environ={})

    def test_examples_load(self) -> None:
        """The bundled example configurations are valid."""
        root = Path(__file__).resolve().parents[2] / "examples"
        for conf in sorted(root.glob("*.toml")):
            cfg = load(conf, environ={})
            assert resolve(cfg, cfg.source.path).is_dir(), conf

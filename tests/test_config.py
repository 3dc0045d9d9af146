"""Settings file, paths, host resolution and key handling (glmchat/config.py)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from glmchat import hosts
from glmchat.config import (
    Config,
    api_key_for,
    load_config,
    mask_key,
    paths,
    resolve_host,
    save_config,
)
from glmchat.errors import ConfigError

KEY = "sk-0123456789abcdefSECRETtail"


def test_glmchat_home_holds_everything(glmchat_home: Path) -> None:
    p = paths()
    assert p.config_file == glmchat_home / "config.toml"
    assert p.data_dir == glmchat_home
    assert p.themes_dir.parent == glmchat_home
    assert p.log_file.parent == glmchat_home


def test_folders_are_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "fresh" / "home"
    monkeypatch.setenv("GLMCHAT_HOME", str(home))
    p = paths()
    assert p.data_dir.is_dir()
    assert stat.S_IMODE(home.stat().st_mode) & 0o077 == 0


def test_platform_folders_without_glmchat_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GLMCHAT_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    p = paths()
    assert p.config_file == tmp_path / "cfg" / "glmchat" / "config.toml"
    assert p.data_dir == tmp_path / "data" / "glmchat"
    assert p.themes_dir == tmp_path / "cfg" / "glmchat" / "themes"


def test_missing_file_gives_defaults() -> None:
    config = load_config(paths())
    assert config == Config()
    assert (config.host, config.theme, config.temperature, config.top_p) == ("zai", "glm-dark", 1.0, 0.95)
    assert config.thinking and config.preserve_thinking
    assert config.warnings == []


def test_save_and_load_round_trip() -> None:
    p = paths()
    config = Config(host="cerebras", model="zai-glm-4.7", theme="x", thinking=False, max_tokens=4096,
                    system_prompt='line one\n"quoted" \\ back', temperature=0.6, sidebar=False,
                    last_session="abc", keys={"zai": KEY},
                    hosts={"zai": {"context_window": 1000}, "mine": {"dialect": "chat", "base_url": "http://127.0.0.1:1/v1"}})
    save_config(config, p)
    loaded = load_config(p)
    assert loaded == config
    assert loaded.warnings == []


def test_saved_file_is_0600_even_with_a_permissive_umask() -> None:
    p = paths()
    old = os.umask(0o000)
    try:
        save_config(Config(keys={"zai": KEY}), p)
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.config_file.stat().st_mode) == 0o600
    # Replacing an existing group-readable file also leaves 0600 behind.
    os.chmod(p.config_file, 0o644)
    save_config(Config(keys={"zai": KEY}), p)
    assert stat.S_IMODE(p.config_file.stat().st_mode) == 0o600
    assert not [f for f in p.config_dir.iterdir() if f.name.endswith(".tmp")]


def test_unknown_settings_warn_and_survive_a_save() -> None:
    p = paths()
    p.config_file.write_text('theme = "a"\ncolour = "blue"\n[hosts.zai]\nspeed = 3\n')
    config = load_config(p)
    assert config.theme == "a"
    assert any("'colour'" in w for w in config.warnings)
    assert any("hosts.zai.speed" in w for w in config.warnings)
    save_config(config, p)
    assert 'colour = "blue"' in p.config_file.read_text()


def test_wrong_type_keeps_the_default_with_a_warning() -> None:
    p = paths()
    p.config_file.write_text('temperature = "hot"\nthinking = 1\ntop_p = 1\n')
    config = load_config(p)
    assert config.temperature == 1.0 and config.thinking is True
    assert config.top_p == 1.0 and isinstance(config.top_p, float)
    assert len(config.warnings) == 2


def test_broken_toml_is_set_aside_with_file_and_line() -> None:
    p = paths()
    text = 'host = "zai"\ntheme = "x"\nmodel = = "glm"\n'
    p.config_file.write_text(text)
    config = load_config(p)
    assert config == Config()
    [warning] = config.warnings
    assert f"{p.config_file} line 3:" in warning
    assert not p.config_file.exists()
    [aside] = list(p.config_dir.glob("config.toml.broken-*"))
    assert aside.read_text() == text  # set aside, never deleted or changed
    assert aside.name in warning
    # A second broken file on the same second gets its own name.
    p.config_file.write_text("[[[")
    assert load_config(p).warnings
    assert len(list(p.config_dir.glob("config.toml.broken-*"))) == 2


def test_broken_toml_at_end_of_file_and_bad_utf8() -> None:
    p = paths()
    p.config_file.write_text('host = "zai"\nmodel = "unterminated\n')
    assert "line 2:" in load_config(p).warnings[0]
    p.config_file.write_bytes(b'host = "zai"\n\ntheme = "\xff"\n')
    assert "line 3: not valid UTF-8" in load_config(p).warnings[0]


def test_group_readable_file_with_keys_warns() -> None:
    p = paths()
    save_config(Config(keys={"zai": KEY}), p)
    assert load_config(p).warnings == []
    os.chmod(p.config_file, 0o640)
    [warning] = load_config(p).warnings
    assert f"chmod 600 {p.config_file}" in warning
    assert KEY not in warning
    # Without keys there is nothing to protect.
    save_config(Config(), p)
    os.chmod(p.config_file, 0o644)
    assert load_config(p).warnings == []


def test_resolve_builtin_with_overrides_and_run_options() -> None:
    config = Config(hosts={"zai": {"context_window": 1234, "models": ["a", "b"], "thinking_style": "none"}})
    host = resolve_host(config)
    assert host.id == "zai" and host.context_window == 1234 and host.models == ("a", "b")
    assert not host.can_toggle_thinking
    run = resolve_host(config, "zai", base_url="http://127.0.0.1:9999/zai", model="glm-4.7-flash")
    assert run.base_url == "http://127.0.0.1:9999/zai" and run.default_model == "glm-4.7-flash"
    # --base-url is for this run only.
    assert resolve_host(config).base_url == hosts.BUILTIN_HOSTS["zai"].base_url


def test_config_model_applies_to_the_default_host_only() -> None:
    config = Config(host="zai", model="glm-4.7-flash")
    assert resolve_host(config).default_model == "glm-4.7-flash"
    assert resolve_host(config, "cerebras").default_model == "zai-glm-4.7"


def test_unknown_host_lists_known_ids() -> None:
    config = Config(hosts={"mybox": {"dialect": "ollama", "base_url": "http://127.0.0.1:1"}})
    with pytest.raises(ConfigError) as info:
        resolve_host(config, "nope")
    assert "'nope'" in info.value.message
    for host_id in [*hosts.BUILTIN_HOSTS, "mybox"]:
        assert host_id in info.value.message


def test_user_host_based_on_a_builtin() -> None:
    config = Config(hosts={"proxy": {"based_on": "cerebras", "base_url": "https://proxy.example/v1", "name": "My proxy"}})
    host = resolve_host(config, "proxy")
    assert host.id == "proxy" and host.name == "My proxy"
    assert host.thinking_style == hosts.ThinkingStyle.EFFORT and host.replay_field == hosts.ReplayField.THINK_TAGS
    assert host.default_model == "zai-glm-4.7"
    # The built-in's key variable is not inherited: a proxy gets its own key.
    assert host.key_env is None and not host.local


def test_user_host_by_dialect() -> None:
    config = Config(hosts={"box": {"dialect": "ollama", "base_url": "http://127.0.0.1:11434"},
                           "plain": {"dialect": "chat", "base_url": "http://localhost:5000/v1"}})
    box = resolve_host(config, "box")
    assert box.dialect == hosts.Dialect.OLLAMA and box.chat_path == "/api/chat" and box.local
    plain = resolve_host(config, "plain")
    assert plain.dialect == hosts.Dialect.CHAT and plain.url == "http://localhost:5000/v1/chat/completions"


@pytest.mark.parametrize(
    "entry, words",
    [
        ({"base_url": "https://x.example"}, ["dialect"]),
        ({"dialect": "chat"}, ["base_url"]),
        ({"dialect": "grpc", "base_url": "https://x.example"}, ["grpc"]),
        ({"based_on": "nowhere", "base_url": "https://x.example"}, ["nowhere"]),
        ({"dialect": "chat", "base_url": "https://x.example", "context_window": "big"}, ["context_window"]),
        ({"dialect": "chat", "base_url": "http://10.1.2.3/v1", "local": False}, ["allow_insecure_http"]),
    ],
)
def test_bad_user_host_is_a_config_error(entry: dict, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_host(Config(hosts={"bad": entry}), "bad")
    for word in words:
        assert word in info.value.message
    assert "bad" in info.value.message


def test_remote_plain_http_base_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="allow_insecure_http"):
        resolve_host(Config(), "zai", base_url="http://api.example.com/v4")


def test_api_key_env_first_then_config(monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config(keys={"zai": "from-config", "vllm": "local-key"})
    zai = resolve_host(config, "zai")
    assert api_key_for(config, zai) == "from-config"
    monkeypatch.setenv("ZAI_API_KEY", " from-env\n")
    assert api_key_for(config, zai) == "from-env"
    assert api_key_for(config, resolve_host(config, "cerebras")) is None
    assert api_key_for(config, resolve_host(config, "ollama")) is None
    assert api_key_for(config, resolve_host(config, "vllm")) == "local-key"


@pytest.mark.parametrize(
    "key, shown",
    [
        ("sk-0123456789abcdefWXYZ", "sk-…WXYZ"),
        ("0123456789abcdef0123456789abcdef.AbCdEfGh12345678", "…5678"),
        ("short-key", "…"),
        ("", "(none)"),
        (None, "(none)"),
    ],
)
def test_mask_key(key: str | None, shown: str) -> None:
    assert mask_key(key) == shown


def test_mask_never_shows_more_than_four_secret_chars() -> None:
    for n in range(1, 60):
        key = "".join(chr(ord("a") + i % 26) for i in range(n))
        masked = mask_key(key)
        visible = masked.replace("…", "")
        assert len(visible) <= 4

from __future__ import annotations

from pathlib import Path

import pytest

from boonb import config


def test_database_defaults_to_project_dot_boonb(tmp_path: Path) -> None:
    settings = config.get_settings()
    assert settings.project == tmp_path / "project"
    assert settings.database == tmp_path / "project" / ".boonb" / "boonb.duckdb"


def test_environment_sets_values_and_bad_values_name_the_variable(tmp_path: Path) -> None:
    env = {"BOONB_DB_PATH": str(tmp_path / "x.duckdb"), "BOONB_FLUSH_INTERVAL_MS": "500"}
    settings = config.from_environment(env)
    assert settings.database == tmp_path / "x.duckdb" and settings.flush_interval_ms == 500
    with pytest.raises(config.ConfigError, match="BOONB_FLUSH_INTERVAL_MS"):
        config.from_environment({"BOONB_FLUSH_INTERVAL_MS": "soon"})


def test_update_changes_settings_at_run_time_all_or_nothing() -> None:
    config.update(model="deepseek-reasoner", flush_interval_ms=300)
    assert config.get_settings().model == "deepseek-reasoner"
    with pytest.raises(config.ConfigError, match="flush_interval_ms"):
        config.update(model="other", flush_interval_ms=-5)
    assert config.get_settings().model == "deepseek-reasoner"  # nothing applied
    with pytest.raises(config.ConfigError, match="unknown setting colour"):
        config.update(colour="blue")


def test_secrets_are_never_shown() -> None:
    config.update(deepseek_api_key="sk-very-secret")
    shown = config.get_settings().public_dict()
    assert shown["deepseek_api_key"] == "set"
    assert "sk-very-secret" not in repr(config.get_settings())
    assert "sk-very-secret" not in str(shown)


def test_an_empty_value_is_refused_not_read_as_the_current_directory() -> None:
    before = config.get_settings()
    with pytest.raises(config.ConfigError, match="db_path is empty"):
        config.update(db_path="")
    with pytest.raises(config.ConfigError, match="model is empty"):
        config.update(model="  ")
    assert config.get_settings() == before


def test_a_project_that_does_not_exist_is_refused_and_not_created(tmp_path: Path) -> None:
    typo = tmp_path / "projcet"
    with pytest.raises(config.ConfigError, match="not a directory; create it first"):
        config.update(project=str(typo))
    assert not typo.exists()
    (tmp_path / "real").mkdir()
    assert config.update(project=str(tmp_path / "real")).project == tmp_path / "real"


def test_executor_settings_come_from_the_environment_with_their_defaults() -> None:
    default = config.from_environment({})
    assert (default.executor, default.dask_address) == ("local", None)
    assert (default.dask_agents_per_worker, default.dask_heartbeat_s) == (256, 5.0)
    settings = config.from_environment(
        {
            "BOONB_EXECUTOR": "Dask",  # the value is case-insensitive
            "BOONB_DASK_ADDRESS": "tls://scheduler:8786",
            "BOONB_DASK_AGENTS_PER_WORKER": "64",
            "BOONB_DASK_HEARTBEAT_S": "0.5",
        }
    )
    assert settings.executor == "dask" and settings.dask_address == "tls://scheduler:8786"
    assert (settings.dask_agents_per_worker, settings.dask_heartbeat_s) == (64, 0.5)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("BOONB_EXECUTOR", "ray", "'local' or 'dask'"),
        ("BOONB_DASK_ADDRESS", "http://scheduler:8787", "dashboard's http:// URL"),
        ("BOONB_DASK_ADDRESS", "tcp://", "such as tcp://10.0.0.5:8786"),
        ("BOONB_DASK_AGENTS_PER_WORKER", "0", "greater than or equal to 1"),
        ("BOONB_DASK_HEARTBEAT_S", "0", "greater than or equal to 0.1"),
        ("BOONB_DASK_HEARTBEAT_S", "often", "valid number"),
    ],
)
def test_bad_executor_settings_are_refused_naming_the_variable(
    variable: str, value: str, says: str
) -> None:
    with pytest.raises(config.ConfigError) as refused:
        config.from_environment({variable: value})
    assert variable in str(refused.value) and says in str(refused.value)


def test_executor_settings_change_at_run_time_and_bad_ones_change_nothing() -> None:
    config.update(executor="dask", dask_address="127.0.0.1:8786")
    assert config.get_settings().executor == "dask"
    with pytest.raises(config.ConfigError, match="executor: Input should be 'local' or 'dask'"):
        config.update(executor="threads", dask_address="tcp://other:8786")
    assert config.get_settings().dask_address == "127.0.0.1:8786"  # nothing applied
    assert config.update(dask_address="off").dask_address is None

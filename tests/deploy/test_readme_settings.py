"""README.md's settings table is generated from the settings classes: it fails here when they drift."""

from pathlib import Path

from clinishare_allinone import settings_table

ROOT = Path(__file__).resolve().parents[2]


def test_readme_settings_table_matches_the_settings_classes() -> None:
    readme = (ROOT / "README.md").read_text()
    assert settings_table.render(readme) == readme, "README.md's settings table is stale: run `make settings-table`"


def test_every_setting_of_every_process_is_in_the_table() -> None:
    table = settings_table.table()
    for _, cls in settings_table.classes():
        prefix = str(cls.model_config.get("env_prefix") or "")
        for name in cls.model_fields:
            if name != "service_name":
                assert f"`{prefix}{name.upper()}`" in table or f"`<SERVICE>_{name.upper()}`" in table \
                    or name in settings_table.SYSTEM_WIDE, (cls.__name__, name)


def test_a_new_setting_makes_the_readme_stale() -> None:
    readme = (ROOT / "README.md").read_text()
    edited = readme.replace("| `IDENTITY_KEY_REFRESH_SECONDS` |", "| `IDENTITY_KEY_REFRESH_SECS` |")
    assert edited != readme and settings_table.render(edited) != edited

"""Policy presets load, say what their library's page says, and bad files are refused clearly."""

from pathlib import Path

import pytest

from app.policy import PRESETS, PolicyError, load_policy


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_and_every_value_names_its_rule(name: str) -> None:
    policy = load_policy(name)
    assert policy.name == name
    text = (Path("app/policies") / f"{name}.toml").read_text(encoding="utf-8")
    for line in text.splitlines():
        if "=" in line and not line.startswith("#") and not line.startswith("name"):
            assert "#" in line, f"{name}: {line!r} has no comment naming its seed rule"


def test_presets_reproduce_the_seed_pages() -> None:
    koga = load_policy("koga")
    assert koga.card_regex.fullmatch("100000017") and not koga.card_regex.fullmatch("200000017")
    assert (koga.password_min_length, koga.password_max_length) == (4, 8)
    assert koga.email_only_contact and koga.contact_methods == ("email",)
    assert koga.password_registration_requires_kana
    kita = load_policy("kitakyushu")
    assert (kita.password_min_length, kita.password_max_length, kita.renewal_days) == (6, 20, 14)
    assert not kita.renewal_counts_renewal_day and kita.max_emails == 3
    assert kita.contact_methods == ("email", "phone", "none")
    fuku = load_policy("fukushima")
    assert fuku.renewal_days == 15 and fuku.renewal_counts_renewal_day and fuku.email_required_for_holds
    yoko = load_policy("yokohama")
    assert (yoko.password_min_length, yoko.password_max_length) == (8, 15)
    assert set(yoko.password_required_classes) == {"letter", "digit", "symbol"}
    fukuoka = load_policy("fukuoka")
    assert fukuoka.overdue_blocks_holds and fukuoka.shelf_days == 7 and fukuoka.renewals_allowed == 1
    assert load_policy("default").session_timeout_minutes == 60


def test_policy_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "city.toml"
    path.write_text('name = "city"\nloan_days = 21\nrenewal_window_days = 3\n')
    policy = load_policy(str(path))
    assert (policy.name, policy.loan_days, policy.renewal_window_days) == ("city", 21, 3)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("loan_dayz = 3", "Unknown policy setting"),
        ("loan_days = -1", "loan_days must be a whole number"),
        ("loan_days = true", "loan_days must be a whole number"),
        ("email_only_contact = 1", "email_only_contact must be true or false"),
        ('password_required_classes = ["emoji"]', "password_required_classes must be a list"),
        ("password_min_length = 9\npassword_max_length = 8", "exceeds"),
        ("loan_days = ", "LIBRARY_POLICY"),
    ],
)
def test_bad_policy_files_are_refused_with_a_message(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(PolicyError, match=message):
        load_policy(str(path))


def test_unknown_preset_is_refused() -> None:
    with pytest.raises(PolicyError, match="no preset of that name"):
        load_policy("atlantis")

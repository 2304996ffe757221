"""Password hashing is argon2id; each policy's rules are enforced and the broken rule is named."""

import pytest

from app.policy import load_policy
from app.services.passwords import PasswordRuleBroken, check_password_rules, hash_password, verify_password


async def test_hashes_are_argon2id_and_verify() -> None:
    stored = await hash_password("hanako-2026")
    assert stored.startswith("$argon2id$")
    assert await verify_password(stored, "hanako-2026")
    assert not await verify_password(stored, "Hanako-2026")
    assert not await verify_password(None, "anything")
    assert not await verify_password("not a hash", "anything")


@pytest.mark.parametrize(
    ("preset", "password", "rule"),
    [
        ("koga", "abc", "length"),
        ("koga", "abcdefghi", "length"),
        ("koga", "abcd", None),
        ("koga", "ab-cd", "charset"),
        ("koga", "ａｂｃｄ", "charset"),  # full-width letters are not half-width alphanumerics
        ("kitakyushu", "abcde", "length"),
        ("kitakyushu", "Abc123", None),
        ("kitakyushu", "x" * 21, "length"),
        ("yokohama", "abcdefgh", "digit"),
        ("yokohama", "12345678", "letter"),
        ("yokohama", "abcd1234", "symbol"),
        ("yokohama", "abcd123#", None),
        ("yokohama", "abcd123$", "charset"),
        ("default", "パスワード123", "charset"),
    ],
)
def test_policy_rules(preset: str, password: str, rule: str | None) -> None:
    policy = load_policy(preset)
    if rule is None:
        check_password_rules(policy, password)
    else:
        with pytest.raises(PasswordRuleBroken) as broken:
            check_password_rules(policy, password)
        assert broken.value.rule == rule

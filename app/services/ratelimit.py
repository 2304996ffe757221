"""Fixed-window counters in Redis, so a limit holds across every web process."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis


@dataclass(frozen=True)
class Limit:
    name: str
    attempts: int
    window_seconds: int


LOGIN_PER_CARD_AND_CLIENT = Limit("login-card-client", 5, 15 * 60)
LOGIN_PER_CLIENT = Limit("login-client", 30, 15 * 60)


class RateLimiter:
    def __init__(self, redis: Redis, namespace: str) -> None:
        self.redis = redis
        self.namespace = namespace

    def _key(self, limit: Limit, key: str) -> str:
        return f"{self.namespace}:rl:{limit.name}:{key}"

    async def exceeded(self, limit: Limit, key: str) -> bool:
        value = await self.redis.get(self._key(limit, key))
        return value is not None and int(value) >= limit.attempts

    async def hit(self, limit: Limit, key: str) -> int:
        name = self._key(limit, key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, limit.window_seconds, nx=True)
            count, _ = await pipe.execute()
        return int(count)

    async def reset(self, limit: Limit, key: str) -> None:
        await self.redis.delete(self._key(limit, key))

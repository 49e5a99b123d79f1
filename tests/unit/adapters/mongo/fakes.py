"""Fake pymongo collections that record what they are asked: the repositories' queries, checked without a server."""

from __future__ import annotations

from typing import Any


class FakeCollection:
    """Records every call as (method, args, kwargs) and answers from `answers[method]`: an exception
    instance is raised, a function is called with the call's arguments, anything else is returned."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.answers: dict[str, Any] = {}

    def __getattr__(self, method: str) -> Any:
        if method.startswith("__"):
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((method, args, kwargs))
            answer = self.answers.get(method)
            if isinstance(answer, BaseException):
                raise answer
            return answer(*args, **kwargs) if callable(answer) else answer

        return call


class FakeDb(dict):
    """Collections by name, created on first use."""

    def __missing__(self, name: str) -> FakeCollection:
        collection = self[name] = FakeCollection()
        return collection

from lsp_server.completion_cache import CompletionCache


def test_typing_the_prediction_hits_the_cache() -> None:
    cache = CompletionCache()
    cache.store("u", "sy = ", "\nreturn sy\n", "sum(p.y for p in points)")
    assert cache.lookup("u", "sy = ", "\nreturn sy\n") == "sum(p.y for p in points)"
    assert cache.lookup("u", "sy = sum(", "\nreturn sy\n") == "p.y for p in points)"
    assert cache.lookup("u", "sy = sum(p.y for p in points", "\nreturn sy\n") == ")"


def test_anything_else_misses() -> None:
    cache = CompletionCache()
    cache.store("u", "sy = ", "\n", "sum(p.y)")
    assert cache.lookup("u", "sy = max(", "\n") is None  # typed something else
    assert cache.lookup("u", "sy = sum(", "\nchanged\n") is None  # the text below changed
    assert cache.lookup("u", "sy = sum(p.y)", "\n") is None  # all of it typed: nothing left
    assert cache.lookup("other", "sy = ", "\n") is None
    assert cache.lookup("u", "sx = ", "\n") is None  # the text before changed


def test_forget_and_bounded_size() -> None:
    cache = CompletionCache(per_document=2, documents=2)
    for i in range(5):
        cache.store("u", f"x{i} = ", "", "1")
    assert cache.lookup("u", "x0 = ", "") is None
    assert cache.lookup("u", "x4 = ", "") == "1"
    cache.store("v", "", "", "a")
    cache.store("w", "", "", "b")
    assert cache.lookup("u", "x4 = ", "") is None  # least recently stored document dropped
    cache.forget("w")
    assert cache.lookup("w", "", "") is None

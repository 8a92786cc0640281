from lsp_server.kv_reuse import Move, plan_reuse, removals, shift_order


def covered(plan, length: int) -> list[int]:
    """Which prompt positions the plan fills, each exactly once."""
    filled = list(range(plan.keep))
    for move in plan.moves:
        filled += range(move.dst, move.dst + move.length)
    for start, end in plan.evaluate:
        filled += range(start, end)
    return sorted(filled)


def test_prefix_only() -> None:
    plan = plan_reuse([1, 2, 3, 4], [1, 2, 3, 9, 9], min_run=4)
    assert plan.keep == 3 and plan.moves == () and plan.evaluate == ((3, 5),)


def test_identical_prompt_still_evaluates_the_last_token() -> None:
    plan = plan_reuse(list(range(100)), list(range(100)), min_run=8)
    assert plan.keep == 99 and plan.evaluate == ((99, 100),)


def test_window_moved_down_reuses_the_rest_shifted() -> None:
    cached = [0, *range(1000, 1300)]  # BOS + 300 tokens
    prompt = [0, *range(1100, 1300), 7, 8]  # first 100 dropped, two typed
    plan = plan_reuse(cached, prompt, min_run=32)
    assert plan.keep == 1
    assert plan.moves == (Move(src=101, dst=1, length=200),)
    assert plan.evaluate == ((201, 203),)
    assert covered(plan, len(prompt)) == list(range(len(prompt)))
    assert removals(plan) == [(1, 101), (301, -1)]


def test_dropped_context_item_reuses_what_follows() -> None:
    item_a, item_b, code = list(range(500, 560)), list(range(600, 640)), list(range(2000, 2300))
    cached = [0, *item_a, *item_b, *code]
    prompt = [0, *item_b, *code, 5]
    plan = plan_reuse(cached, prompt, min_run=32)
    assert plan.moves == (Move(src=61, dst=1, length=340),)
    assert plan.evaluate == ((341, 342),)
    assert covered(plan, len(prompt)) == list(range(len(prompt)))


def test_nothing_is_moved_past_a_gap() -> None:
    # llama.cpp only appends after the highest cached position: a new item in
    # front means everything after it is evaluated again.
    cached = [0, *range(2000, 2300)]
    prompt = [0, *range(600, 640), *range(2000, 2300)]
    plan = plan_reuse(cached, prompt, min_run=32)
    assert plan.moves == () and plan.evaluate == ((1, len(prompt)),)


def test_short_runs_are_not_worth_moving() -> None:
    cached = [0, *range(100, 120), *range(200, 220)]
    prompt = [0, 9, *range(100, 120)]
    assert plan_reuse(cached, prompt, min_run=64).moves == ()


def test_shift_order_never_lands_on_occupied_cells() -> None:
    cached = [0, 1, 2, 3, *range(10, 50), *range(60, 100), *range(200, 240)]
    prompt = [0, *range(10, 50), *range(200, 240), 9]
    plan = plan_reuse(cached, prompt, min_run=16)
    occupied = {m.src + i for m in plan.moves for i in range(m.length)} | set(range(plan.keep))
    for move in shift_order(plan):
        source = set(range(move.src, move.src + move.length))
        target = set(range(move.dst, move.dst + move.length))
        assert not (target & (occupied - source)), move
        occupied = (occupied - source) | target

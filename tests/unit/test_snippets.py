from lsp_server import snippets

UNIX = """func (sw *Switch) Socket(family, sotype, proto int) (s int, err error) {
	sw.once.Do(sw.init)
	so := &Status{Cookie: cookie(family, sotype, proto)}
	sw.fmu.RLock()
	f := sw.fltab[FilterSocket]
	sw.fmu.RUnlock()
	af, err := f.apply(so)
	if err != nil {
		return -1, err
	}
	s, so.Err = socketFunc(family, sotype, proto)
	return s, nil
}
"""


def test_windows_overlap_and_leave_out_blank_stretches() -> None:
    text = "\n".join(f"value_{i} = compute(value_{i - 1})" for i in range(30)) + "\n" + "\n" * 20
    windows = snippets.windows(text)
    assert [w.start_line for w in windows][:3] == [0, snippets.STRIDE_LINES, 2 * snippets.STRIDE_LINES]
    assert all(w.text.strip() for w in windows)
    assert windows[0].end_line - windows[0].start_line == snippets.WINDOW_LINES


def test_keywords_do_not_count_as_shared_words() -> None:
    assert snippets.identifiers("if x is None: return self.total") == {"x", "total"}


def test_the_twin_window_of_a_sibling_file_wins_and_overlapping_windows_are_not_repeated() -> None:
    above = "func (sw *Switch) Socket(family, sotype, proto int) (s int, err error) {\n"
    unrelated = snippets.windows("\n".join(f"total += price_{i} * quantity" for i in range(24)))
    twin = snippets.windows(UNIX)
    candidates = [("twin.go", w) for w in twin] + [("other.go", w) for w in unrelated]
    best = snippets.most_similar(candidates, snippets.query(above), count=3, least=0.1)
    assert best[0][1] == "twin.go" and "sw.once.Do(sw.init)" in best[0][2].text
    chosen = [(key, w.start_line, w.end_line) for _, key, w in best]
    for i, (key, start, end) in enumerate(chosen):
        for other_key, other_start, other_end in chosen[i + 1 :]:
            assert key != other_key or end <= other_start or other_end <= start
    assert snippets.most_similar(candidates, snippets.query(above), count=3, least=0.99) == []

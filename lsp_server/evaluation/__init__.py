"""`inkling eval`: a fill-in-the-middle benchmark built from code installed on the machine.

corpus (where files come from, dev/test split) -> tasks (holes) -> runners
(the server's pipeline, the real server over stdio, a naive baseline) ->
metrics (how each answer is scored) -> report (JSON, table, chart); cli ties
them together.
"""

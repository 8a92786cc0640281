"""`inkling bench`: replay human-paced editing sessions through the real server.

sessions (what the user types, as data) -> replay (over LSP, in real time)
-> floor (the same prompts straight through llama-cpp-python) -> report.
"""

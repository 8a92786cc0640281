"""`inkling bundle`: everything an air-gapped machine needs, gathered on a connected one.

The bundle is a folder (optionally one .tar.gz): a wheelhouse with a portable
llama-cpp-python wheel, the default model files, the editor clients, an
`install.sh` that installs from the folder alone, and a `SHA256SUMS` of every
file. See docs/air-gapped.md.
"""

"""The core: the canonical dataset model, its reader/writer, image helpers, errors, randomness, terminal UI."""

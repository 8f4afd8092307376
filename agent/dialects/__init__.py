"""Pure translators: a job in, validated machine lines out. No I/O here."""

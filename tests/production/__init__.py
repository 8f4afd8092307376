"""Production pieces: systemd, installer, broker TLS and ACL, signed jobs, doctor."""

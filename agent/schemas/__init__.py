"""Versioned wire models (pydantic v2) for every MQTT payload; JSON Schema is generated from them.

``SCHEMA_VERSION`` is carried as ``v`` in every outgoing payload; incoming payloads may omit it
(it defaults to the current version) and a payload with a version this agent does not know is
rejected with ``unsupported_version``.
"""

SCHEMA_VERSION = 1

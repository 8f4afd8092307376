"""The station's link to the planner: MQTT topics, the broker connection, the outbox."""

"""Watching decisions in production: OpenTelemetry spans (:mod:`.telemetry`) and the drift monitor (:mod:`.monitor`)."""

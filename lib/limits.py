"""Byte bounds on hostile input, in one place (docs/data.md "Hostile input").

No imports: the loader (lib.data.files), the rule table's Python side (lib.quality), the Spark
transforms and the Kafka admin helpers all read them. Real events are ~200 bytes as CSV, ~250 as JSON.
"""

from __future__ import annotations

# A record (a Kafka message value, or one line of an event file) over this is quarantined as
# ``oversized_record`` without being parsed. conf/quality_rules.yaml repeats the number (a test checks).
MAX_RECORD_BYTES = 64 * 1024

# What quarantine/events keeps of a rejected message: a valid-UTF-8 prefix of at most this many bytes
# (+2 when a multi-byte character is cut). Every byte stays in bronze/events at the same
# topic/partition/offset. Together with ``kafka.max_offsets_per_trigger`` rows per micro-batch this
# bounds what the lakehouse collects to the driver (lib.transforms.silver.judged_rows).
QUARANTINE_VALUE_BYTES = 4 * 1024
QUARANTINE_KEY_BYTES = 1024

# Longest text field (category_code, brand, user_session) of a valid event (rule ``oversized_field``).
MAX_TEXT_FIELD_CHARS = 255

# Largest message the events topic accepts (topic ``max.message.bytes``, set by lib.kafka_admin
# ensure_topic / scripts/kafka.sh; the replayer's producer uses the same limit). 16 MiB: a 10 MB hostile
# message gets in and is quarantined (``oversized_record``) instead of being refused at the door.
TOPIC_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

# The loader keeps at most this many bytes of one line (a bigger line is published cut to this, so it
# still fits the topic with its key and headers); the line's full size is reported.
LOADER_KEEP_BYTES = TOPIC_MAX_MESSAGE_BYTES - 64 * 1024

"""What replies.py reads of a backend's reply for a traced request, bounded whatever the
backend sends."""


def test_a_replys_finish_reasons_are_kept_bounded():
    """A backend that states thousands of distinct finish reasons leaves a traced request a few."""
    from devstral_proxy.record import Record
    from devstral_proxy.replies import MAX_FINISH, note_finish

    record = Record(b"POST", "/v1/chat/completions", "127.0.0.1", 0)
    note_finish(record, b"".join(b'{"finish_reason":"r%d"}' % i for i in range(5000)) + b'{"finish_reason":"stop"}')
    assert record.finish == tuple(f"r{i}" for i in range(MAX_FINISH))
    note_finish(Record(b"POST", "/", "", 0), b'"finish_reason":"' + b"x" * 100 + b'"')  # an overlong one: ignored, no error

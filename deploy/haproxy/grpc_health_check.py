"""Print the bytes of the gRPC health check in deploy/haproxy/haproxy.cfg, as hex.

HAProxy 2.6 cannot send a gRPC request body from ``http-check`` (a gRPC message starts with NUL
bytes, which its strings cannot hold), so the check is a ``tcp-check`` that speaks HTTP/2 itself:
the client preface, SETTINGS, one HEADERS frame for ``POST /grpc.health.v1.Health/Check`` and a
DATA frame holding an empty ``HealthCheckRequest`` (5 bytes: not compressed, length 0). The
frames are made by the ``h2`` library (python-hyper), not by hand. ``EXPECT`` is the DATA frame
of a ``SERVING`` answer on that stream: frame length 7, type DATA, stream 1, then the gRPC
message ``HealthCheckResponse{status: SERVING}`` (field 1 = 1). ``NOT_SERVING`` (2), an error
status or no answer fail the check. ``tests/test_load_balancer.py`` checks that haproxy.cfg holds
exactly these bytes.

    python deploy/haproxy/grpc_health_check.py    # prints SEND and EXPECT
"""

from __future__ import annotations

import h2.config
import h2.connection

HEALTH_PATH = "/grpc.health.v1.Health/Check"
EXPECT = "000007" + "00" + "00" + "00000001" + "00" + "00000002" + "0801"  # frame header, then the gRPC message


def send_bytes() -> bytes:
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    connection.initiate_connection()
    headers = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", HEALTH_PATH),
        (":authority", "localhost"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    connection.send_headers(1, headers)
    connection.send_data(1, b"\0" * 5, end_stream=True)
    return connection.data_to_send()


if __name__ == "__main__":
    print(f"SEND   {send_bytes().hex()}")
    print(f"EXPECT {EXPECT}")

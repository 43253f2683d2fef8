"""submit_sm decode+encode round trips per second on one core; prints one JSON line."""

from __future__ import annotations

import json
import sys
import timeit

from adressat.smpp.codec import decode, encode
from adressat.smpp.constants import CommandId, TlvTag
from adressat.smpp.pdus import Pdu


def sample() -> bytes:
    pdu = Pdu.make(
        CommandId.SUBMIT_SM,
        123456,
        service_type="CMT",
        source_addr_ton=5,
        source_addr_npi=0,
        source_addr="Adressat",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="46701234567",
        esm_class=0,
        registered_delivery=1,
        data_coding=0,
        validity_period="000001000000000R",
        short_message=b"Your one-time code is 123456. It is valid for 5 minutes.",
        tlvs=[(TlvTag.USER_MESSAGE_REFERENCE, 42)],
    )
    return encode(pdu)


def main() -> None:
    frame = sample()

    def roundtrip() -> None:
        encode(decode(frame))

    assert encode(decode(frame)) == frame
    number = 20000 if "--quick" in sys.argv else 200000
    best = min(timeit.repeat(roundtrip, number=number, repeat=3))
    print(
        json.dumps(
            {
                "bench": "codec",
                "submit_sm_roundtrips_per_s": round(number / best),
                "us_per_roundtrip": round(best / number * 1e6, 2),
                "frame_octets": len(frame),
                "cores": 1,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Protocol v1 over ZeroMQ: encode/decode, the engine's Publisher and the client's Subscriber."""
from streamseg.transport.messages import EosMessage, Message, SegInstance, SegMessage, StatusMessage
from streamseg.transport.protocol import PROTOCOL_VERSION, decode, encode_eos, encode_seg, encode_status
from streamseg.transport.publisher import Publisher
from streamseg.transport.subscriber import Subscriber

__all__ = [
    "PROTOCOL_VERSION", "EosMessage", "Message", "Publisher", "SegInstance", "SegMessage", "StatusMessage",
    "Subscriber", "decode", "encode_eos", "encode_seg", "encode_status",
]

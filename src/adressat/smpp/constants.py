"""SMPP 3.4 numeric constants as IntEnums (SMPP v3.4 specification, section 5)."""

from __future__ import annotations

from enum import IntEnum

INTERFACE_VERSION_34 = 0x34
RESPONSE_BIT = 0x80000000
HEADER_LENGTH = 16


class CommandId(IntEnum):
    """command_id values (section 5.1.2.1); responses have RESPONSE_BIT set."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103

    @property
    def is_response(self) -> bool:
        return bool(self.value & RESPONSE_BIT)

    @property
    def spec_name(self) -> str:
        return self.name.lower()


class CommandStatus(IntEnum):
    """command_status values (section 5.1.3); every code has a description."""

    description: str

    def __new__(cls, value: int, description: str) -> CommandStatus:
        obj = int.__new__(cls, value)
        obj._value_ = value
        obj.description = description
        return obj

    ESME_ROK = 0x00, "No error"
    ESME_RINVMSGLEN = 0x01, "Message length is invalid"
    ESME_RINVCMDLEN = 0x02, "Command length is invalid"
    ESME_RINVCMDID = 0x03, "Invalid command ID"
    ESME_RINVBNDSTS = 0x04, "Incorrect BIND status for given command"
    ESME_RALYBND = 0x05, "ESME already in bound state"
    ESME_RINVPRTFLG = 0x06, "Invalid priority flag"
    ESME_RINVREGDLVFLG = 0x07, "Invalid registered delivery flag"
    ESME_RSYSERR = 0x08, "System error"
    ESME_RINVSRCADR = 0x0A, "Invalid source address"
    ESME_RINVDSTADR = 0x0B, "Invalid destination address"
    ESME_RINVMSGID = 0x0C, "Message ID is invalid"
    ESME_RBINDFAIL = 0x0D, "Bind failed"
    ESME_RINVPASWD = 0x0E, "Invalid password"
    ESME_RINVSYSID = 0x0F, "Invalid system ID"
    ESME_RCANCELFAIL = 0x11, "Cancel SM failed"
    ESME_RREPLACEFAIL = 0x13, "Replace SM failed"
    ESME_RMSGQFUL = 0x14, "Message queue full"
    ESME_RINVSERTYP = 0x15, "Invalid service type"
    ESME_RINVNUMDESTS = 0x33, "Invalid number of destinations"
    ESME_RINVDLNAME = 0x34, "Invalid distribution list name"
    ESME_RINVDESTFLAG = 0x40, "Destination flag is invalid (submit_multi)"
    ESME_RINVSUBREP = 0x42, "Invalid 'submit with replace' request"
    ESME_RINVESMCLASS = 0x43, "Invalid esm_class field data"
    ESME_RCNTSUBDL = 0x44, "Cannot submit to distribution list"
    ESME_RSUBMITFAIL = 0x45, "submit_sm or submit_multi failed"
    ESME_RINVSRCTON = 0x48, "Invalid source address TON"
    ESME_RINVSRCNPI = 0x49, "Invalid source address NPI"
    ESME_RINVDSTTON = 0x50, "Invalid destination address TON"
    ESME_RINVDSTNPI = 0x51, "Invalid destination address NPI"
    ESME_RINVSYSTYP = 0x53, "Invalid system_type field"
    ESME_RINVREPFLAG = 0x54, "Invalid replace_if_present flag"
    ESME_RINVNUMMSGS = 0x55, "Invalid number of messages"
    ESME_RTHROTTLED = 0x58, "Throttling error (ESME has exceeded allowed message limits)"
    ESME_RINVSCHED = 0x61, "Invalid scheduled delivery time"
    ESME_RINVEXPIRY = 0x62, "Invalid message validity period (expiry time)"
    ESME_RINVDFTMSGID = 0x63, "Predefined message invalid or not found"
    ESME_RX_T_APPN = 0x64, "ESME receiver temporary app error code"
    ESME_RX_P_APPN = 0x65, "ESME receiver permanent app error code"
    ESME_RX_R_APPN = 0x66, "ESME receiver reject message error code"
    ESME_RQUERYFAIL = 0x67, "query_sm request failed"
    ESME_RINVOPTPARSTREAM = 0xC0, "Error in the optional part of the PDU body"
    ESME_ROPTPARNOTALLWD = 0xC1, "Optional parameter not allowed"
    ESME_RINVPARLEN = 0xC2, "Invalid parameter length"
    ESME_RMISSINGOPTPARAM = 0xC3, "Expected optional parameter missing"
    ESME_RINVOPTPARAMVAL = 0xC4, "Invalid optional parameter value"
    ESME_RDELIVERYFAILURE = 0xFE, "Delivery failure (used for data_sm_resp)"
    ESME_RUNKNOWNERR = 0xFF, "Unknown error"


class Ton(IntEnum):
    """Type of number (section 5.2.5)."""

    UNKNOWN = 0
    INTERNATIONAL = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3
    SUBSCRIBER_NUMBER = 4
    ALPHANUMERIC = 5
    ABBREVIATED = 6


class Npi(IntEnum):
    """Numbering plan indicator (section 5.2.6)."""

    UNKNOWN = 0
    ISDN = 1  # E.163 / E.164
    DATA = 3  # X.121
    TELEX = 4  # F.69
    LAND_MOBILE = 6  # E.212
    NATIONAL = 8
    PRIVATE = 9
    ERMES = 10
    INTERNET = 14  # IP
    WAP_CLIENT_ID = 18


class EsmClass(IntEnum):
    """esm_class bits (section 5.2.12): messaging mode, message type, GSM features."""

    MODE_MASK = 0x03
    MODE_DEFAULT = 0x00
    MODE_DATAGRAM = 0x01
    MODE_FORWARD = 0x02
    MODE_STORE_AND_FORWARD = 0x03
    TYPE_MASK = 0x3C
    TYPE_DEFAULT = 0x00
    TYPE_DELIVERY_RECEIPT = 0x04
    TYPE_DELIVERY_ACK = 0x08
    TYPE_USER_ACK = 0x10
    TYPE_CONVERSATION_ABORT = 0x18
    TYPE_INTERMEDIATE_NOTIFICATION = 0x20
    GSM_MASK = 0xC0
    GSM_UDHI = 0x40
    GSM_REPLY_PATH = 0x80
    GSM_UDHI_AND_REPLY_PATH = 0xC0


class DataCoding(IntEnum):
    """data_coding values (section 5.2.19)."""

    SMSC_DEFAULT = 0x00
    IA5 = 0x01
    OCTET_UNSPECIFIED = 0x02
    LATIN_1 = 0x03
    OCTET_UNSPECIFIED_2 = 0x04
    JIS = 0x05
    CYRILLIC = 0x06
    LATIN_HEBREW = 0x07
    UCS2 = 0x08
    PICTOGRAM = 0x09
    ISO_2022_JP = 0x0A
    EXTENDED_KANJI = 0x0D
    KS_C_5601 = 0x0E


class RegisteredDelivery(IntEnum):
    """registered_delivery bits (section 5.2.17)."""

    RECEIPT_MASK = 0x03
    RECEIPT_NONE = 0x00
    RECEIPT_ON_SUCCESS_OR_FAILURE = 0x01
    RECEIPT_ON_FAILURE = 0x02
    SME_ACK_MASK = 0x0C
    SME_ACK_DELIVERY = 0x04
    SME_ACK_MANUAL = 0x08
    SME_ACK_BOTH = 0x0C
    INTERMEDIATE_NOTIFICATION = 0x10


class MessageState(IntEnum):
    """message_state values (section 5.2.28)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


class DestFlag(IntEnum):
    """submit_multi dest_flag (section 5.2.25)."""

    SME_ADDRESS = 1
    DISTRIBUTION_LIST = 2


class TlvTag(IntEnum):
    """Optional parameter tags (section 5.3.2)."""

    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383
    # vendor-specific range 0x1400-0x3FFF (section 5.3.2), adressat's own: how many SMSCs a
    # message passed through, so a loop between operators ends (Jasmin #376)
    ADRESSAT_HOPS = 0x14AD

"""Every JSON example of both exchange documents, copied verbatim (``../shared/protocols/``).

``test_documents.py`` checks these copies against the documents when they are present.
"""

import json

# -- piexgo-websocket-streams.md ------------------------------------------------------------

PIEXGO_SUBSCRIBE_DEALINFO = """{
    "op":"subscribe",
    "topic":"dealinfo.btc_usdt"
}"""

PIEXGO_UNSUBSCRIBE_DEALINFO = """{
    "op":"unsubscribe",
    "topic":"dealinfo.btc_usdt"
}"""

PIEXGO_DEALINFO = """{
    "topic":"dealinfo",
    "symbol":"btc_usdt",
    "deals":[
        {
            "time":1553326491272,
            "direct":0,
            "price":"4003.9000000000",
            "vol":"0.01510000"
        },
        {
            "time":1553326491273,
            "direct":0,
            "price":"4003.9000000000",
            "vol":"0.23490000"
        }
    ]
}"""

PIEXGO_SUBSCRIBE_DEPTH = """{
    "op":"subscribe",
    "topic":"depth.btc_usdt"
}"""

PIEXGO_UNSUBSCRIBE_DEPTH = """{
    "op":"unsubscribe",
    "topic":"depth.btc_usdt"
}"""

PIEXGO_DEPTH = """{
    "topic":"depth",
    "symbol":"btc_usdt",
    "buy_book":[
        {
            "index":0,
            "price":3990.67,
            "qty":0.21
        },
        {
            "index":1,
            "price":3990.56,
            "qty":0.2
        },
        {
            "index":2,
            "price":3990.52,
            "qty":0.24
        },
        {
            "index":3,
            "price":3990.49,
            "qty":0.43
        },
        {
            "index":4,
            "price":3990.48,
            "qty":1.02
        }
    ],
    "sell_book":[
        {
            "index":0,
            "price":3990.69,
            "qty":0.07
        },
        {
            "index":1,
            "price":3990.89,
            "qty":0.18
        },
        {
            "index":2,
            "price":3991.01,
            "qty":1.4
        },
        {
            "index":3,
            "price":3991.28,
            "qty":1.97
        },
        {
            "index":4,
            "price":3991.29,
            "qty":0.46
        }
    ],
    "change_id":36296
}"""

PIEXGO_SUBSCRIBE_PINFO = """{
    "op":"subscribe",
    "topic":"pinfo"
}"""

PIEXGO_UNSUBSCRIBE_PINFO = """{
    "op":"unsubscribe",
    "topic":"pinfo"
}"""

PIEXGO_ORDER = """{
    "topic":"pinfo",
    "type":"order",
    "data":{
        "order_price":"7831.1600000000",
        "price":"7828.08",
        "stop":"0.0000000000",
        "market_price":"0.0000000000",
        "volume":"1.00000000",
        "remain":"0.00000000",
        "amount":"7828.07520000",
        "type":"buy",
        "timestamp":1559734776,
        "order_id":"1136203593297424385",
        "market":"BTC_USDT",
        "status":2,
        "flag":0,
        "id":1559734776923657000
    }
}"""

PIEXGO_BALANCE = """
{
    "topic":"pinfo",
    "type":"balance",
    "data":{
        "token":"BTC",
        "type":"balance",
        "value":"10000991076.10471725",
        "id":10897125
    }
}"""

PIEXGO_SENT = [
    PIEXGO_SUBSCRIBE_DEALINFO,
    PIEXGO_UNSUBSCRIBE_DEALINFO,
    PIEXGO_SUBSCRIBE_DEPTH,
    PIEXGO_UNSUBSCRIBE_DEPTH,
    PIEXGO_SUBSCRIBE_PINFO,
    PIEXGO_UNSUBSCRIBE_PINFO,
]
PIEXGO_RECEIVED = [PIEXGO_DEALINFO, PIEXGO_DEPTH, PIEXGO_ORDER, PIEXGO_BALANCE]

# -- cryptology-server-messages.rst ---------------------------------------------------------

CRYPTOLOGY_PLACED = """{
    "@type": "BuyOrderPlaced",
    "amount": "1",
    "closed_inline": false,
    "order_id": 1,
    "price": "1",
    "time": [
        946684800,
        0
    ],
    "trade_pair": "BTC_USD",
    "client_order_id": 123
}"""

CRYPTOLOGY_AMOUNT_CHANGED = """{
    "@type": "BuyOrderAmountChanged",
    "amount": "1",
    "order_id": 1,
    "time": [
        946684800,
        0
    ],
    "trade_pair": "BTC_USD",
    "client_order_id": 123
}"""

CRYPTOLOGY_CANCELLED = """{
    "@type": "BuyOrderCancelled",
    "order_id": 1,
    "time": [
        946684800,
        0
    ],
    "trade_pair": "BTC_USD",
    "client_order_id": 123
}"""

CRYPTOLOGY_CLOSED = """{
    "@type": "BuyOrderClosed",
    "order_id": 1,
    "time": [
        946684800,
        0
    ],
    "trade_pair": "BTC_USD",
    "client_order_id": 123
}"""

CRYPTOLOGY_SET_BALANCE = """{
    "@type": "SetBalance",
    "balance": "1",
    "change": "1",
    "currency": "USD",
    "reason": "aaaaa",
    "time": [
        946684800,
        0
    ]
}"""

CRYPTOLOGY_INSUFFICIENT_FUNDS = """{
    "@type": "InsufficientFunds",
    "order_id": 1,
    "currency": "USD"
}"""

CRYPTOLOGY_ANONYMOUS_TRADE = """{
    "@type": "AnonymousTrade",
    "amount": "1",
    "maker_buy": false,
    "price": "1",
    "time": [
        946684800,
        0
    ],
    "trade_pair": "BTC_USD"
}"""

CRYPTOLOGY_BOOK = """{
    "@type": "OrderBookAgg",
    "buy_levels": {
        "1": "1"
    },
    "sell_levels": {
        "0.1": "1"
    },
    "trade_pair": "BTC_USD"
}"""

CRYPTOLOGY_RECEIVED = [
    CRYPTOLOGY_PLACED,
    CRYPTOLOGY_AMOUNT_CHANGED,
    CRYPTOLOGY_CANCELLED,
    CRYPTOLOGY_CLOSED,
    CRYPTOLOGY_SET_BALANCE,
    CRYPTOLOGY_INSUFFICIENT_FUNDS,
    CRYPTOLOGY_ANONYMOUS_TRADE,
    CRYPTOLOGY_BOOK,
]


# -- built from the examples ------------------------------------------------------------------


def piexgo_order(order_id: str) -> str:
    """``PIEXGO_ORDER`` (a buy, filled) with ``order_id`` for the document's, as one line of
    JSON: the id is written as ``json.dumps`` writes any string."""
    order = json.loads(PIEXGO_ORDER)
    order["data"]["order_id"] = order_id
    return json.dumps(order)


def escaped(text: str) -> str:
    """``text`` as a JSON string body with every character written as \\u escapes (UTF-16)."""
    units = text.encode("utf-16-be")
    return "".join(f"\\u{units[i] << 8 | units[i + 1]:04x}" for i in range(0, len(units), 2))

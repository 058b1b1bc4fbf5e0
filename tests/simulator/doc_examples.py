"""The example frames of the two protocol documents (../shared/protocols), verbatim, so that
tests can compare the simulator's frames with what the documents show."""

import json

PIEXGO_DEALINFO = json.loads("""{
    "topic":"dealinfo",
    "symbol":"btc_usdt",
    "deals":[
        {"time":1553326491272, "direct":0, "price":"4003.9000000000", "vol":"0.01510000"}
    ]
}""")

PIEXGO_DEPTH = json.loads("""{
    "topic":"depth",
    "symbol":"btc_usdt",
    "buy_book":[{"index":0, "price":3990.67, "qty":0.21}],
    "sell_book":[{"index":0, "price":3990.69, "qty":0.07}],
    "change_id":36296
}""")

PIEXGO_ORDER = json.loads("""{
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
}""")

PIEXGO_BALANCE = json.loads("""{
    "topic":"pinfo",
    "type":"balance",
    "data":{
        "token":"BTC",
        "type":"balance",
        "value":"10000991076.10471725",
        "id":10897125
    }
}""")

_T = '"time": [946684800, 0]'
CRYPTOLOGY = {
    "OrderPlaced": json.loads(
        '{"@type": "BuyOrderPlaced", "amount": "1", "closed_inline": false, "order_id": 1,'
        f' "price": "1", {_T}, "trade_pair": "BTC_USD", "client_order_id": 123}}'
    ),
    "OrderAmountChanged": json.loads(
        '{"@type": "BuyOrderAmountChanged", "amount": "1", "order_id": 1,'
        f' {_T}, "trade_pair": "BTC_USD", "client_order_id": 123}}'
    ),
    "OrderCancelled": json.loads(
        '{"@type": "BuyOrderCancelled", "order_id": 1,'
        f' {_T}, "trade_pair": "BTC_USD", "client_order_id": 123}}'
    ),
    "OrderClosed": json.loads(
        '{"@type": "BuyOrderClosed", "order_id": 1,'
        f' {_T}, "trade_pair": "BTC_USD", "client_order_id": 123}}'
    ),
    "SetBalance": json.loads(
        '{"@type": "SetBalance", "balance": "1", "change": "1", "currency": "USD",'
        f' "reason": "aaaaa", {_T}}}'
    ),
    "InsufficientFunds": json.loads(
        '{"@type": "InsufficientFunds", "order_id": 1, "currency": "USD"}'
    ),
    "AnonymousTrade": json.loads(
        '{"@type": "AnonymousTrade", "amount": "1", "maker_buy": false, "price": "1",'
        f' {_T}, "trade_pair": "BTC_USD"}}'
    ),
    "OrderBookAgg": json.loads(
        '{"@type": "OrderBookAgg", "buy_levels": {"1": "1"}, "sell_levels": {"0.1": "1"},'
        ' "trade_pair": "BTC_USD"}'
    ),
}


def shape(value: object) -> object:
    """The JSON shape of a value: dict keys with their shapes, list item shape, scalar type."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__

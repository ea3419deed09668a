"""A tool module as an admin would write one; it records every execution it performs.

Executions go to memory and, when THREADGATE_TEST_TOOL_LOG names a file, to that file, so a
test can count executions across processes.
"""

import os
from collections import Counter

from agents import FunctionTool, function_tool

EXECUTIONS: Counter[str] = Counter()


def _record(entry: str) -> None:
    EXECUTIONS[entry] += 1
    path = os.environ.get("THREADGATE_TEST_TOOL_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(entry + "\n")


@function_tool
def delete_customer(customer_id: str) -> str:
    """Delete a customer record for good.

    Args:
        customer_id: The customer's id.
    """
    _record(f"delete_customer:{customer_id}")
    return f"customer {customer_id} deleted"


@function_tool
def refund(order_id: str, amount: float) -> str:
    """Refund an order.

    Args:
        order_id: The order.
        amount: How much to refund.
    """
    _record(f"refund:{order_id}")
    return f"refunded {amount} on {order_id}"


@function_tool
def explode(reason: str) -> str:
    """A tool that always fails.

    Args:
        reason: Why.
    """
    _record(f"explode:{reason}")
    raise RuntimeError(f"boom: {reason}")


@function_tool
def lookup_order(order_id: str) -> str:
    """Read-only lookup.

    Args:
        order_id: The order.
    """
    _record(f"lookup_order:{order_id}")
    return f"order {order_id}: shipped"


TOOLS: list[FunctionTool] = [delete_customer, refund, explode, lookup_order]

"""Store: the products, stock, orders and prices of a small online shop (prices in US dollars)."""

import random
from typing import NamedTuple

from labkit.tools.base import TaskDraft, TaskTemplate, gold_call, lookup

FAMILY = "store"


class Product(NamedTuple):
    name: str
    category: str
    price: float
    stock: int
    rating: float  # average review, out of 5


class Order(NamedTuple):
    customer: str
    status: str
    items: tuple[tuple[str, int], ...]  # (product ID, quantity)


PRODUCTS = {
    "P-1001": Product("Wireless Mouse", "electronics", 24.99, 140, 4.4),
    "P-1002": Product("Mechanical Keyboard", "electronics", 89.5, 35, 4.6),
    "P-1003": Product("USB-C Hub", "electronics", 39.0, 0, 4.1),
    "P-1004": Product("Noise-Cancelling Headphones", "electronics", 199.0, 12, 4.7),
    "P-1005": Product("Chef's Knife", "kitchen", 54.0, 60, 4.8),
    "P-1006": Product("Cast Iron Skillet", "kitchen", 42.75, 25, 4.7),
    "P-1007": Product("French Press", "kitchen", 29.9, 80, 4.3),
    "P-1008": Product("Dune", "books", 12.99, 200, 4.6),
    "P-1009": Product("The Hobbit", "books", 10.5, 150, 4.8),
    "P-1010": Product("Beloved", "books", 14.25, 40, 4.5),
    "P-1011": Product("1984", "books", 9.75, 90, 4.7),
    "P-1012": Product("Things Fall Apart", "books", 11.4, 55, 4.6),
    "P-1013": Product("Camping Tent", "outdoor", 149.0, 8, 4.2),
    "P-1014": Product("Trail Backpack", "outdoor", 79.95, 22, 4.5),
    "P-1015": Product("Water Bottle", "outdoor", 18.0, 300, 4.4),
    "P-1016": Product("Desk Lamp", "office", 34.5, 45, 4.1),
    "P-1017": Product("Notebook Set", "office", 9.99, 500, 4.3),
    "P-1018": Product("Ergonomic Chair", "office", 249.0, 5, 4.6),
}
ORDERS = {
    "O-5001": Order("Amara Okafor", "delivered", (("P-1001", 1), ("P-1017", 3))),
    "O-5002": Order("Lucas Meyer", "shipped", (("P-1008", 2), ("P-1009", 1), ("P-1011", 1))),
    "O-5003": Order("Sofia Rossi", "processing", (("P-1004", 1),)),
    "O-5004": Order("Kenji Sato", "cancelled", (("P-1013", 1), ("P-1015", 2))),
    "O-5005": Order("Priya Nair", "delivered", (("P-1005", 1), ("P-1006", 1), ("P-1007", 1))),
    "O-5006": Order("Mateo Garcia", "shipped", (("P-1018", 1), ("P-1016", 2))),
    "O-5007": Order("Emma Larsen", "processing", (("P-1002", 1), ("P-1003", 2))),
    "O-5008": Order("Noah Cohen", "delivered", (("P-1014", 1), ("P-1012", 1), ("P-1010", 1))),
}
COUPONS = {"SAVE10": 0.10, "WELCOME15": 0.15, "VIP25": 0.25}  # fraction off the subtotal
# Month-on-month price moves, cycled from a different month for each product.
PRICE_SWINGS = (0.05, -0.03, 0.08, 0.0, -0.06, 0.02, 0.04, -0.02, 0.1, -0.04, 0.03, 0.0)


def get_product(product_id: str) -> dict:
    """Get a product's details.

    Args:
        product_id: Product ID, e.g. P-1001

    Returns:
        The product's ID, name, category, price in US dollars, units in stock and average rating.
    """
    product_id = lookup(product_id, PRODUCTS, "product ID")
    product = PRODUCTS[product_id]
    return {
        "product_id": product_id,
        "name": product.name,
        "category": product.category,
        "price": product.price,
        "stock": product.stock,
        "rating": product.rating,
    }


def search_products(keyword: str, max_price: float = 1000.0) -> list[dict]:
    """Search the catalog for products whose name or category contains a keyword.

    Args:
        keyword: The word to look for, e.g. lamp or kitchen
        max_price: Leave out products dearer than this, in US dollars

    Returns:
        The matching products (ID, name, category, price), cheapest first; empty when nothing matches.
    """
    needle = keyword.strip().casefold()
    if not needle:
        raise ValueError("keyword must not be empty")
    matches = [
        {"product_id": pid, "name": p.name, "category": p.category, "price": p.price}
        for pid, p in PRODUCTS.items()
        if (needle in p.name.casefold() or needle in p.category) and p.price <= max_price
    ]
    return sorted(matches, key=lambda match: (match["price"], match["product_id"]))


def check_stock(product_id: str, quantity: int = 1) -> dict:
    """Check whether enough units of a product are in stock.

    Args:
        product_id: Product ID, e.g. P-1013
        quantity: How many units are wanted

    Returns:
        The product ID, the units requested, the units available and whether the request can be met.
    """
    product_id = lookup(product_id, PRODUCTS, "product ID")
    if quantity < 1:
        raise ValueError(f"quantity must be at least 1, got {quantity}")
    available = PRODUCTS[product_id].stock
    return {"product_id": product_id, "requested": quantity, "available": available, "in_stock": available >= quantity}


def get_order(order_id: str) -> dict:
    """Get an order: who placed it, its status and what it contains.

    Args:
        order_id: Order ID, e.g. O-5001

    Returns:
        The order ID, the customer, the status (processing, shipped, delivered or cancelled) and the items
        with their quantities.
    """
    order_id = lookup(order_id, ORDERS, "order ID")
    order = ORDERS[order_id]
    items = [{"product_id": pid, "quantity": quantity} for pid, quantity in order.items]
    return {"order_id": order_id, "customer": order.customer, "status": order.status, "items": items}


def get_order_total(order_id: str, coupon: str = "") -> dict:
    """Price an order at current prices, optionally with a coupon.

    Args:
        order_id: Order ID, e.g. O-5002
        coupon: Coupon code, e.g. SAVE10; leave empty for none

    Returns:
        The order ID, the subtotal, the coupon discount and the total, all in US dollars.
    """
    order_id = lookup(order_id, ORDERS, "order ID")
    off = COUPONS[lookup(coupon, COUPONS, "coupon code")] if coupon.strip() else 0.0
    subtotal = sum(PRODUCTS[pid].price * quantity for pid, quantity in ORDERS[order_id].items)
    discount = round(subtotal * off, 2)
    return {
        "order_id": order_id,
        "subtotal": round(subtotal, 2),
        "discount": discount,
        "total": round(subtotal - discount, 2),
        "currency": "USD",
    }


def get_price_history(product_id: str, months: int = 6) -> dict:
    """Get a product's monthly prices for the last few months.

    Args:
        product_id: Product ID, e.g. P-1004
        months: How many months to cover, from 2 to 12

    Returns:
        The product ID, the months covered and the prices in US dollars, oldest first and ending with the current one.
    """
    product_id = lookup(product_id, PRODUCTS, "product ID")
    if not 2 <= months <= 12:
        raise ValueError(f"months must be between 2 and 12, got {months}")
    start, price = sorted(PRODUCTS).index(product_id), PRODUCTS[product_id].price
    past = [round(price * (1 + PRICE_SWINGS[(start + month) % len(PRICE_SWINGS)]), 2) for month in range(months - 1)]
    return {"product_id": product_id, "months": months, "prices": past + [price]}


TOOLS = [get_product, search_products, check_stock, get_order, get_order_total, get_price_history]

# ----------------------------------------------------------------------------- task templates


def _product_price(rng: random.Random) -> TaskDraft:
    product_id = rng.choice(sorted(PRODUCTS))
    call, answer = gold_call(get_product, "price", product_id=product_id)
    query = rng.choice(
        [
            f"How much does product {product_id} cost?",
            f"What is the price of item {product_id}, in dollars?",
        ]
    )
    return TaskDraft(query, [call], answer, "number", extra_tools=["get_price_history"])


def _stock_level(rng: random.Random) -> TaskDraft:
    product_id = rng.choice(sorted(PRODUCTS))
    call, answer = gold_call(check_stock, "available", product_id=product_id)
    query = f"How many units of {product_id} are in stock right now?"
    return TaskDraft(query, [call], answer, "number", extra_tools=["search_products"])


def _order_status(rng: random.Random) -> TaskDraft:
    order_id = rng.choice(sorted(ORDERS))
    call, answer = gold_call(get_order, "status", order_id=order_id)
    query = rng.choice(
        [
            f"What is the status of order {order_id}?",
            f"Has order {order_id} shipped yet? Give its status.",
        ]
    )
    return TaskDraft(query, [call], answer, "exact", extra_tools=["get_order_total"])


def _order_total(rng: random.Random) -> TaskDraft:
    order_id, coupon = rng.choice(sorted(ORDERS)), rng.choice(sorted(COUPONS))
    call, answer = gold_call(get_order_total, "total", order_id=order_id, coupon=coupon)
    query = f"What would order {order_id} cost with coupon {coupon}?"
    return TaskDraft(query, [call], answer, "number", extra_tools=["get_order"])


def _cheapest_in_category(rng: random.Random) -> TaskDraft:
    category = rng.choice(sorted({p.category for p in PRODUCTS.values()}))
    call, answer = gold_call(search_products, "0.name", keyword=category)
    query = f"What is the cheapest {category} product in the store?"
    return TaskDraft(query, [call], answer, "exact", extra_tools=["get_product"])


def _first_item_name(rng: random.Random) -> TaskDraft:
    order_id = rng.choice(sorted(ORDERS))
    first, product_id = gold_call(get_order, "items.0.product_id", order_id=order_id)
    second, answer = gold_call(get_product, "name", product_id=product_id)
    query = f"What is the first item listed in order {order_id} called?"
    return TaskDraft(query, [first, second], answer, "exact", extra_tools=["check_stock"])


TEMPLATES = [
    TaskTemplate("store.product_price", (FAMILY,), _product_price),
    TaskTemplate("store.stock_level", (FAMILY,), _stock_level),
    TaskTemplate("store.order_status", (FAMILY,), _order_status),
    TaskTemplate("store.order_total", (FAMILY,), _order_total),
    TaskTemplate("store.cheapest_in_category", (FAMILY,), _cheapest_in_category),
    TaskTemplate("store.first_item_name", (FAMILY,), _first_item_name),
]

"""A deterministic synthetic grocery shop: same preset and seed, same tables.

Structure: departments hold aisles, aisles hold products with readable names, brands
and department-typical prices. Users have latent tastes (department preferences tilted
by age group and region, personal aisle preferences, a set of staples they reorder
often), a shopping rhythm (mean days between orders: heavy and light shoppers), a usual
hour of day and a usual basket size. Each order is a session of views, cart additions
and purchases, a step apart: views first, then carts, then the purchases. Some views
are never bought and some carts are abandoned.

Everything is vectorised with numpy; large presets are generated in chunks of users.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recmill import schema as S
from recmill.data.tables import ID_DTYPE, Tables, canonical_events, canonical_items, canonical_users


@dataclass(frozen=True)
class Preset:
    users: int
    products: int
    median_gap_days: float  # a typical user's days between orders
    basket: float  # a typical user's products per order
    cart_share: float  # share of purchases with a cart event before them
    abandoned: float  # cart events never bought, per purchase
    view_share: float  # share of purchases with a view before them
    browsed: float  # views of products not bought in that order, per purchase
    chunk_users: int


PRESETS = {
    "tiny": Preset(60, 80, 40, 4, 1.0, 0.15, 0.6, 0.5, 60),
    "small": Preset(2_500, 1_200, 30, 5.5, 1.0, 0.1, 0.5, 0.4, 2_500),
    # the public Instacart sizes; few views and carts per purchase keep it near 40M rows
    "instacart": Preset(206_209, 49_688, 16, 11, 0.12, 0.01, 0.06, 0.04, 20_000),
}
# The instacart shop with a share of its users, for measuring growth with size: about
# 1M, 4M and 16M order lines (the full preset has 32M order lines, 40M events).
for _lines, _share in (("1m", 1 / 32), ("4m", 1 / 8), ("16m", 1 / 2)):
    PRESETS[f"instacart_{_lines}"] = dataclasses.replace(PRESETS["instacart"], users=round(206_209 * _share))

START = np.datetime64("2025-07-01", "ns")
DAYS = 365  # orders fall in the year ending 2026-06-30
STEP = np.timedelta64(20, "s")  # between consecutive events of one session
DAY = np.timedelta64(1, "D")

# department: (typical price, share of purchases, {aisle: (products, variants)})
DEPARTMENTS = {
    "produce": (2.5, 0.29, {
        "fresh fruits": (("Bananas", "Apples", "Strawberries", "Blueberries", "Lemons", "Avocados"), ("", "Fresh", "Ripe", "Local", "Bagged", "Jumbo")),
        "fresh vegetables": (("Spinach", "Carrots", "Broccoli", "Cucumber", "Zucchini", "Onions"), ("", "Local", "Fresh", "Farm Grown", "Hand Picked")),
        "fresh herbs": (("Cilantro", "Basil", "Parsley", "Mint", "Dill"), ("", "Fresh", "Local", "Living")),
        "packaged vegetables fruits": (("Salad Mix", "Baby Carrots", "Grape Tomatoes", "Green Beans"), ("", "Washed", "Snack Pack", "Party Size")),
    }),
    "dairy eggs": (3.5, 0.17, {
        "milk": (("Milk", "Chocolate Milk", "Oat Milk", "Almond Milk"), ("", "Whole", "Reduced Fat", "Lactose Free", "Unsweetened")),
        "yogurt": (("Greek Yogurt", "Yogurt", "Kefir"), ("Plain", "Vanilla", "Strawberry", "Blueberry", "Nonfat", "Honey")),
        "eggs": (("Eggs",), ("Large Brown", "Large White", "Free Range", "Pasture Raised", "Cage Free", "Jumbo")),
        "packaged cheese": (("Cheddar", "Mozzarella", "Parmesan", "Swiss Cheese", "Feta"), ("", "Shredded", "Sliced", "Block", "Aged")),
        "butter": (("Butter", "Ghee", "Spread"), ("Salted", "Unsalted", "Whipped", "Cultured")),
    }),
    "snacks": (3.8, 0.09, {
        "chips pretzels": (("Tortilla Chips", "Potato Chips", "Pretzels", "Pita Chips"), ("Sea Salt", "Lightly Salted", "Barbecue", "Kettle Cooked", "Lime")),
        "crackers": (("Crackers", "Rice Crackers", "Graham Crackers"), ("Whole Wheat", "Cheddar", "Multigrain", "Sesame", "Honey")),
        "nuts seeds dried fruit": (("Almonds", "Cashews", "Trail Mix", "Raisins", "Sunflower Seeds"), ("Roasted", "Raw", "Salted", "Unsalted", "Honey Roasted")),
        "cookies cakes": (("Cookies", "Brownies", "Wafers"), ("Chocolate Chip", "Oatmeal Raisin", "Double Chocolate", "Vanilla", "Ginger")),
        "energy granola bars": (("Granola Bars", "Protein Bars", "Fruit Bars"), ("Peanut Butter", "Oats & Honey", "Dark Chocolate", "Berry", "Coconut")),
    }),
    "beverages": (4.0, 0.08, {
        "water seltzer sparkling water": (("Sparkling Water", "Spring Water", "Seltzer"), ("Lime", "Lemon", "Grapefruit", "Unflavored", "Berry")),
        "juice nectars": (("Orange Juice", "Apple Juice", "Lemonade", "Cranberry Juice"), ("", "No Pulp", "Pulp Free", "Light", "Not From Concentrate")),
        "coffee": (("Ground Coffee", "Whole Bean Coffee", "Cold Brew"), ("Medium Roast", "Dark Roast", "Breakfast Blend", "Decaf", "French Roast")),
        "tea": (("Green Tea", "Black Tea", "Herbal Tea", "Chai"), ("", "Decaf", "Honey", "Lemon", "Ginger")),
        "soft drinks": (("Cola", "Ginger Ale", "Root Beer", "Lemon Soda"), ("", "Diet", "Zero Sugar", "Caffeine Free")),
    }),
    "frozen": (4.5, 0.07, {
        "frozen produce": (("Blueberries", "Peas", "Broccoli Florets", "Mixed Vegetables", "Mango Chunks"), ("", "Frozen", "Steamable", "Chopped")),
        "frozen meals": (("Burrito", "Mac & Cheese", "Lasagna", "Fried Rice", "Enchiladas"), ("Bean & Cheese", "Chicken", "Vegetable", "Beef", "Three Cheese")),
        "ice cream ice": (("Ice Cream", "Frozen Yogurt", "Sorbet", "Ice Pops"), ("Vanilla Bean", "Chocolate", "Mint Chip", "Mango", "Salted Caramel")),
        "frozen pizza": (("Pizza", "Flatbread", "Pizza Bites"), ("Margherita", "Pepperoni", "Four Cheese", "Veggie", "Thin Crust")),
    }),
    "pantry": (3.5, 0.06, {
        "oils vinegars": (("Olive Oil", "Avocado Oil", "Balsamic Vinegar", "Apple Cider Vinegar"), ("", "Imported", "Cold Pressed", "Light")),
        "spices seasonings": (("Sea Salt", "Black Pepper", "Cinnamon", "Garlic Powder", "Paprika"), ("Ground", "Coarse", "Smoked", "Whole")),
        "baking ingredients": (("Flour", "Sugar", "Baking Soda", "Vanilla Extract", "Chocolate Chips"), ("", "Pure", "Fine", "Baking")),
        "condiments": (("Ketchup", "Mustard", "Mayonnaise", "Hot Sauce", "Soy Sauce"), ("", "Spicy", "Dijon", "Reduced Sodium", "Squeeze")),
        "spreads": (("Peanut Butter", "Almond Butter", "Strawberry Jam", "Honey"), ("", "Creamy", "Raw", "Pure")),
    }),
    "bakery": (3.8, 0.04, {
        "bread": (("Bread", "Sourdough", "Bagels", "English Muffins"), ("Whole Wheat", "Multigrain", "White", "Sprouted", "Cinnamon Raisin")),
        "tortillas flat bread": (("Tortillas", "Pita", "Naan", "Wraps"), ("Flour", "Corn", "Whole Wheat", "Garlic")),
        "breakfast bakery": (("Croissants", "Muffins", "Donuts", "Scones"), ("Butter", "Blueberry", "Glazed", "Chocolate")),
    }),
    "canned goods": (2.2, 0.03, {
        "canned beans": (("Black Beans", "Chickpeas", "Kidney Beans", "Refried Beans"), ("", "Low Sodium", "Seasoned", "No Salt Added")),
        "soup broth bouillon": (("Chicken Broth", "Vegetable Broth", "Tomato Soup", "Lentil Soup"), ("", "Low Sodium", "Hearty", "Homestyle")),
        "canned tomatoes": (("Diced Tomatoes", "Tomato Paste", "Crushed Tomatoes"), ("", "Fire Roasted", "No Salt Added", "Italian Style")),
    }),
    "deli": (5.0, 0.03, {
        "lunch meat": (("Turkey Breast", "Ham", "Roast Beef", "Salami"), ("Oven Roasted", "Honey", "Smoked", "Black Forest")),
        "fresh dips tapenades": (("Hummus", "Guacamole", "Salsa", "Tzatziki"), ("", "Roasted Red Pepper", "Spicy", "Mild")),
        "prepared meals": (("Chicken Salad", "Pasta Salad", "Sushi Roll", "Rotisserie Chicken"), ("", "Mediterranean", "Lemon Herb", "Southern Style")),
    }),
    "dry goods pasta": (2.3, 0.03, {
        "dry pasta": (("Spaghetti", "Penne", "Fusilli", "Macaroni"), ("", "Whole Wheat", "Gluten Free", "Thin")),
        "grains rice dried goods": (("Rice", "Quinoa", "Lentils", "Couscous"), ("Brown", "Jasmine", "Basmati", "Red", "Wild")),
        "pasta sauce": (("Marinara", "Pesto", "Alfredo Sauce", "Arrabbiata"), ("Traditional", "Basil", "Garlic", "Roasted Garlic")),
    }),
    "meat seafood": (8.0, 0.02, {
        "poultry counter": (("Chicken Breasts", "Chicken Thighs", "Ground Turkey", "Chicken Wings"), ("", "Fresh", "Lean", "Value Pack")),
        "meat counter": (("Ground Beef", "Steak", "Pork Chops", "Bacon"), ("", "Grass Fed", "Thick Cut", "Lean")),
        "seafood counter": (("Salmon Fillet", "Shrimp", "Cod", "Tuna Steak"), ("", "Wild", "Fresh", "Frozen")),
    }),
    "household": (6.0, 0.02, {
        "paper goods": (("Paper Towels", "Toilet Paper", "Napkins", "Tissues"), ("", "Double Roll", "Recycled", "Ultra Soft")),
        "cleaning products": (("All Purpose Cleaner", "Glass Cleaner", "Disinfecting Wipes"), ("Lemon", "Lavender", "Unscented", "Fresh Scent")),
        "dish detergents": (("Dish Soap", "Dishwasher Pods", "Dishwasher Detergent"), ("Lemon", "Free & Clear", "Original", "Citrus")),
        "laundry": (("Laundry Detergent", "Fabric Softener", "Stain Remover"), ("Free & Clear", "Spring Fresh", "Lavender", "Original")),
    }),
    "breakfast": (4.0, 0.02, {
        "cereal": (("Cereal", "Corn Flakes", "Oat Rings", "Bran Flakes"), ("Honey Nut", "Original", "Whole Grain", "Cinnamon", "Frosted")),
        "hot cereal pancake mixes": (("Oatmeal", "Pancake Mix", "Grits"), ("", "Instant", "Original", "Whole Grain")),
        "granola": (("Granola", "Muesli"), ("Maple Pecan", "Almond", "Vanilla", "Berry")),
    }),
    "personal care": (6.5, 0.01, {
        "oral hygiene": (("Toothpaste", "Mouthwash", "Dental Floss"), ("Whitening", "Mint", "Sensitive", "Fresh")),
        "soap": (("Bar Soap", "Hand Soap", "Body Wash"), ("Lavender", "Unscented", "Oatmeal", "Citrus")),
        "hair care": (("Shampoo", "Conditioner"), ("Moisturizing", "Volumizing", "Everyday", "Tea Tree")),
    }),
    "babies": (7.0, 0.01, {
        "baby food formula": (("Baby Food Pouch", "Puffs", "Teething Wafers"), ("Apple", "Pear & Spinach", "Sweet Potato", "Banana")),
        "diapers wipes": (("Diapers", "Baby Wipes"), ("", "Sensitive", "Fragrance Free", "Gentle")),
    }),
    "international": (3.2, 0.01, {
        "asian foods": (("Ramen", "Rice Noodles", "Curry Paste", "Coconut Milk"), ("", "Spicy", "Instant", "Thai")),
        "latino foods": (("Salsa Verde", "Taco Shells", "Enchilada Sauce", "Tostadas"), ("Mild", "Medium", "Hot", "Crunchy")),
    }),
    "alcohol": (11.0, 0.005, {
        "beers coolers": (("Lager", "IPA", "Hard Seltzer", "Pale Ale"), ("", "Session", "Lime", "Hazy")),
        "red wines": (("Cabernet Sauvignon", "Pinot Noir", "Merlot"), ("", "Reserve", "California", "Old Vine")),
        "white wines": (("Chardonnay", "Sauvignon Blanc", "Pinot Grigio"), ("", "Reserve", "Unoaked", "Italian")),
    }),
    "pets": (9.0, 0.003, {
        "dog food care": (("Dog Food", "Dog Treats", "Dog Biscuits"), ("Chicken & Rice", "Lamb", "Grain Free", "Puppy")),
        "cat food care": (("Cat Food", "Cat Litter", "Cat Treats"), ("", "Salmon", "Chicken", "Indoor")),
    }),
}
# (modifier, probability, price factor); the first entry is "no modifier"
MODIFIERS = (("", 0.60, 1.0), ("Organic", 0.20, 1.3), ("Premium", 0.06, 1.6), ("Family Size", 0.05, 1.8),
             ("Classic", 0.05, 1.0), ("Natural", 0.04, 1.1))
BRAND_FIRST = ("Green", "Sunny", "Golden", "Blue", "Happy", "Old", "Pure", "Maple", "River", "Wild", "Little", "North")
BRAND_SECOND = ("Valley", "Farms", "Harvest", "Kitchen", "Orchard", "Creek", "Acres", "Pantry", "Table", "Meadow")
DESCRIPTIONS = (
    "{name} by {brand}. A {department} favourite from our {aisle} aisle.",
    "{brand} {name}: everyday {aisle} at a fair price.",
    "Stock up on {name} from {brand}, one of the best-loved picks in {department}.",
)
AGE_GROUPS = (("18-24", 0.12), ("25-34", 0.26), ("35-44", 0.22), ("45-54", 0.17), ("55-64", 0.13), ("65+", 0.10))
GENDERS = (("F", 0.51), ("M", 0.47), ("X", 0.02))
REGIONS = (("Northeast", 0.22), ("Southeast", 0.24), ("Midwest", 0.20), ("Southwest", 0.12), ("West", 0.22))
EVENT_KINDS = np.array(["view", "cart", "purchase"], dtype=object)


@dataclass(frozen=True)
class Shop:
    items: pd.DataFrame
    aisle_department: np.ndarray  # department index of each aisle
    aisle_share: np.ndarray  # an aisle's share of its department
    department_share: np.ndarray  # a department's share of purchases
    product_keys: np.ndarray  # for _draw: products grouped by aisle, weighted by popularity


def generate(preset: str = "small", seed: int = 42) -> Tables:
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset '{preset}'; known presets: {', '.join(PRESETS)}")
    p = PRESETS[preset]
    rng = np.random.default_rng(seed)
    shop = _shop(rng, p.products)
    people = _people(rng, p)
    # Department tastes lean by age group and region, so user attributes carry signal.
    d = len(DEPARTMENTS)
    lean = rng.lognormal(0, 0.4, (len(AGE_GROUPS), 1, d)) * rng.lognormal(0, 0.3, (1, len(REGIONS), d))
    chunks, n_orders = [], 0
    for first in range(0, p.users, p.chunk_users):
        users = {k: v[first : first + p.chunk_users] for k, v in people.items()}
        events, orders = _sessions(rng, shop, users, lean, p)
        events["user"] += first
        events["order"] = np.where(events["order"] >= 0, events["order"] + n_orders, -1)
        chunks.append(events)
        n_orders += orders
    # Popping as we go frees each chunk's arrays and then each index array once used,
    # which keeps the peak memory of the instacart preset low.
    events = {k: np.concatenate([c.pop(k) for c in chunks]) for k in list(chunks[0])}

    user_ids = _id_strings(p.users)
    # views carry no order: order -1 picks the trailing None
    order_ids = np.append(_id_strings(n_orders), None)
    table = pd.DataFrame(
        {
            S.USER_ID: pd.array(user_ids[events.pop("user")], dtype=ID_DTYPE),
            S.ITEM_ID: pd.array(shop.items[S.ITEM_ID].to_numpy(dtype=object)[events.pop("item")], dtype=ID_DTYPE),
            S.TIMESTAMP: events.pop("time"),
            S.EVENT_TYPE: pd.array(EVENT_KINDS[events.pop("kind")], dtype=ID_DTYPE),
            S.VALUE: 1.0,
            S.ORDER_ID: pd.array(order_ids[events.pop("order")], dtype=ID_DTYPE),
        }
    )
    users = pd.DataFrame(
        {
            S.USER_ID: user_ids,
            "age_group": np.array([a for a, _ in AGE_GROUPS])[people["age"]],
            "gender": np.array([g for g, _ in GENDERS])[people["gender"]],
            "location": np.array([r for r, _ in REGIONS])[people["region"]],
            "signup_date": people["signup"],
        }
    )
    return Tables(canonical_events(table), canonical_items(shop.items), canonical_users(users))


def _id_strings(n: int) -> np.ndarray:
    """'1'..'n' as Python strings; indexing this array shares them instead of copying."""
    return np.arange(1, n + 1).astype(str).astype(object)


def _pick(rng: np.random.Generator, choices: tuple, size: int) -> np.ndarray:
    return rng.choice(len(choices), size=size, p=np.array([c[1] for c in choices]) / sum(c[1] for c in choices))


def _shop(rng: np.random.Generator, n: int) -> Shop:
    aisles = [(d, a, words) for d, (_, _, table) in DEPARTMENTS.items() for a, words in table.items()]
    departments = list(DEPARTMENTS)
    aisle_department = np.array([departments.index(d) for d, _, _ in aisles])
    department_share = np.array([DEPARTMENTS[d][1] for d in departments])
    aisle_share = rng.gamma(4, 0.25, len(aisles))
    aisle_share /= np.bincount(aisle_department, aisle_share)[aisle_department]
    # A small catalogue stocks fewer aisles, so that each holds several products.
    weight = department_share[aisle_department] * aisle_share
    stocked = np.sort(rng.choice(len(aisles), min(len(aisles), max(n // 5, 1)), replace=False, p=weight / weight.sum()))
    per_aisle = 1 + rng.multinomial(n - len(stocked), weight[stocked] / weight[stocked].sum())
    aisle = np.repeat(np.arange(len(stocked)), per_aisle)

    modifier = _pick(rng, MODIFIERS, n)
    noun_draw, variant_draw, text_draw = rng.random(n), rng.random(n), rng.integers(0, len(DESCRIPTIONS), n)
    brands = [f"{a} {b}" for a in BRAND_FIRST for b in BRAND_SECOND]
    department_brands = rng.permuted(np.tile(np.arange(len(brands)), (len(departments), 1)), axis=1)[:, :8]
    brand_draw = rng.integers(0, 8, n)
    rows = []
    for j in range(n):
        department, aisle_name, (nouns, variants) = aisles[stocked[aisle[j]]]
        variant, noun = variants[int(variant_draw[j] * len(variants))], nouns[int(noun_draw[j] * len(nouns))]
        words = [MODIFIERS[modifier[j]][0], variant, noun]
        name = " ".join(w for w in words if w)
        brand = brands[department_brands[departments.index(department), brand_draw[j]]]
        tags = dict.fromkeys(w.lower().replace(" ", "-") for w in (*words, aisle_name, department) if w)
        text = DESCRIPTIONS[text_draw[j]].format(name=name, brand=brand, department=department, aisle=aisle_name)
        rows.append((name, text, aisle_name, " ".join(tags), brand, department))
    name, description, category, tags, brand, department = zip(*rows)

    factor = np.array([m[2] for m in MODIFIERS])[modifier]
    typical = np.array([DEPARTMENTS[d][0] for d in department])
    # Prices end in .49 or .99 and never fall below 0.49.
    price = np.maximum(np.round(typical * factor * rng.lognormal(0, 0.3, n) * 2) / 2 - 0.01, 0.49)
    popularity = rng.lognormal(0, 1.1, n)
    items = pd.DataFrame(
        {
            S.ITEM_ID: _id_strings(n),
            "name": name,
            "description": description,
            "category": category,
            "tags": tags,
            "brand": brand,
            "price": price,
            "aisle": category,
            "department": department,
        }
    )
    return Shop(items, aisle_department[stocked], aisle_share[stocked], department_share, _keys(popularity, aisle))


def _people(rng: np.random.Generator, p: Preset) -> dict[str, np.ndarray]:
    """Per-user attributes and habits."""
    n = p.users
    active = DAYS * rng.uniform(0.2, 1.0, n)  # days since the user's first order
    first_day = DAYS - active
    return {
        "age": _pick(rng, AGE_GROUPS, n),
        "gender": _pick(rng, GENDERS, n),
        "region": _pick(rng, REGIONS, n),
        "first_day": first_day,
        "signup": (START + (first_day - rng.uniform(0, 2 * DAYS, n)).astype(int) * DAY).astype("datetime64[ns]"),
        "gap": np.clip(p.median_gap_days * rng.lognormal(0, 0.6, n), 2, 90),
        "basket": np.maximum(p.basket * rng.lognormal(0, 0.35, n), 1),
        "loyalty": rng.beta(5, 4, n),  # chance that a line is one of the user's staples
        "hour": np.clip(rng.normal(14, 3.5, n), 7, 21),
        "staples": 2 + rng.poisson(6, n),
    }


def _sessions(
    rng: np.random.Generator, shop: Shop, users: dict[str, np.ndarray], lean: np.ndarray, p: Preset
) -> tuple[dict[str, np.ndarray], int]:
    """Events of one chunk of users: user and order indexes local to the chunk."""
    n = len(users["gap"])
    department_taste = rng.gamma(1.5 * len(DEPARTMENTS) * shop.department_share * lean[users["age"], users["region"]])
    k = len(shop.aisle_share)
    aisle_taste = department_taste[:, shop.aisle_department] * shop.aisle_share * rng.gamma(2, 0.5, (n, k))
    aisle_keys = _keys(aisle_taste.ravel(), np.repeat(np.arange(n), k))

    def taste(user: np.ndarray) -> np.ndarray:
        aisle = _draw(rng, aisle_keys, user) - user * k
        return _draw(rng, shop.product_keys, aisle)

    staple_start = np.cumsum(users["staples"]) - users["staples"]
    staples = taste(np.repeat(np.arange(n), users["staples"]))

    # Orders: a first order on first_day, then gaps around the user's rhythm until the year ends.
    draws = np.minimum(np.ceil((DAYS - users["first_day"]) / users["gap"] * 1.6).astype(int) + 1, 100)
    owner = np.repeat(np.arange(n), draws)
    gaps = rng.gamma(4, users["gap"][owner] / 4)
    gaps[np.cumsum(draws) - draws] = 0
    elapsed = np.cumsum(gaps)
    day = users["first_day"][owner] + elapsed - np.repeat(elapsed[np.cumsum(draws) - draws], draws)
    kept = day < DAYS
    owner, day = owner[kept], day[kept]
    hour = np.clip(np.round(users["hour"][owner] + rng.normal(0, 2, len(owner))), 6, 22)
    minute = rng.integers(0, 60, len(owner))
    start = START + (day.astype(int) * 86_400 + hour.astype(int) * 3_600 + minute * 60) * np.timedelta64(1, "s")

    # Lines: a staple with the user's loyalty, otherwise a product drawn from their tastes.
    size = 1 + rng.poisson(users["basket"][owner] - 1)
    order = np.repeat(np.arange(len(owner)), size)
    user = owner[order]
    pick = staple_start[user] + (rng.random(len(order)) * users["staples"][user]).astype(int)
    item = np.where(rng.random(len(order)) < users["loyalty"][user], staples[pick], taste(user))
    n_items = len(shop.items)
    _, first = np.unique(order * n_items + item, return_index=True)  # a product once per order
    first.sort()
    order, item = order[first], item[first]
    bought = np.bincount(order, minlength=len(owner))

    carted = rng.random(len(order)) < p.cart_share
    viewed = rng.random(len(order)) < p.view_share
    abandoned = _extra(rng, bought, p.abandoned, owner, taste)
    browsed = _extra(rng, bought, p.browsed, owner, taste)
    # A product bought in the same order is not an abandoned cart.
    abandoned = abandoned[:, ~np.isin(abandoned[0] * n_items + abandoned[1], order * n_items + item)]
    session_order = np.concatenate([order[viewed], browsed[0], order[carted], abandoned[0], order])
    session_item = np.concatenate([item[viewed], browsed[1], item[carted], abandoned[1], item])
    per_kind = [viewed.sum() + browsed.shape[1], carted.sum() + abandoned.shape[1], len(order)]
    kind = np.repeat(np.arange(3, dtype=np.int8), per_kind)  # view, cart, purchase
    sequence = np.lexsort((rng.random(len(kind)), kind, session_order))
    session_order, session_item, kind = session_order[sequence], session_item[sequence], kind[sequence]
    counts = np.bincount(session_order, minlength=len(owner))
    position = np.arange(len(kind)) - (np.cumsum(counts) - counts)[session_order]
    events = {
        "user": owner[session_order].astype(np.int32),
        "item": session_item.astype(np.int32),
        "time": start[session_order] + position * STEP,
        "kind": kind,
        "order": np.where(kind == 0, -1, session_order).astype(np.int32),
    }
    return events, len(owner)


def _extra(rng: np.random.Generator, bought: np.ndarray, rate: float, owner: np.ndarray, taste) -> np.ndarray:
    """(order, item) pairs: about rate x basket size products per order, from the user's tastes."""
    order = np.repeat(np.arange(len(bought)), rng.poisson(rate * bought))
    return np.stack([order, taste(owner[order])])


def _keys(weights: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Sampling keys for _draw: group + the cumulative weight share within the group.

    ``group`` is sorted and covers 0..k-1; the last key of group g is exactly g + 1.
    """
    total = np.bincount(group, weights)
    before = np.cumsum(total) - total
    keys = group + (np.cumsum(weights) - before[group]) / total[group]
    keys[np.r_[np.flatnonzero(np.diff(group)), len(group) - 1]] = np.unique(group) + 1
    return keys


def _draw(rng: np.random.Generator, keys: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One index per entry of group, drawn within that group in proportion to its weights."""
    # Capped below group + 1, which float rounding of group + 0.99999... could reach.
    target = np.minimum(group + rng.random(len(group)), np.nextafter(group + 1.0, 0))
    return np.searchsorted(keys, target, side="right")

"""Evidence baskets: named collections of passages kept in the database, with a note per excerpt and a log
of the searches that found them, read back as cited excerpts for a briefing."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vkpp_learning.annotations import EffectiveTag, effective_tags, labels, missing_passage
from vkpp_learning.citations import citation, review_citation
from vkpp_learning.db import models
from vkpp_learning.errors import VkppError
from vkpp_learning.roles import User, can, require

NAME_MAX = 200
THEME_FACET = "practice"


@dataclass(frozen=True)
class BasketSummary:
    """One line of the basket list."""

    id: int
    name: str
    description: str
    created_by: str
    created_at: datetime | None
    excerpts: int
    searches: int


@dataclass
class Excerpt:
    """A passage in a basket with everything a briefing prints about it."""

    passage_id: int
    review_id: int
    review_title: str
    review_type: str
    subject: str
    year: int | None
    area: str
    commissioner: str
    page_start: int
    page_end: int
    paragraph: str | None
    section: str
    text: str
    note: str
    themes: list[str]  # practice theme ids from the effective tags, strongest first
    citation: str
    review_citation: str = ""  # the review part of the citation: `DHR "Louise", Eastmoor CSP, 2023`
    subtype: str | None = None
    kind: str = "paragraph"
    added_by: str = ""
    added_at: datetime | None = None
    tags: list[EffectiveTag] = field(default_factory=list)  # every effective tag, all facets

    def to_dict(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "tags"}
        values["added_at"] = self.added_at.isoformat(timespec="seconds") if self.added_at else None
        values["tags"] = [vars(tag) | {"by_analyst": tag.by_analyst} for tag in self.tags]
        return values


def clean_name(name: str) -> str:
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise VkppError("a basket needs a name", code="bad_basket_name")
    if len(cleaned) > NAME_MAX:
        raise VkppError(f"a basket name can be at most {NAME_MAX} characters", code="bad_basket_name")
    return cleaned


def find_basket(session: Session, name: str) -> models.Basket | None:
    return session.scalar(select(models.Basket).where(models.Basket.name == " ".join((name or "").split())))


def get_basket(session: Session, name: str) -> models.Basket:
    """The basket called `name`, or a VkppError that lists the baskets there are."""
    basket = find_basket(session, name)
    if basket is None:
        names = session.scalars(select(models.Basket.name).order_by(models.Basket.name)).all()
        known = f"; baskets: {', '.join(names)}" if names else "; there are no baskets yet"
        raise VkppError(f"no basket called {name!r}{known}", code="unknown_basket")
    return basket


def create_basket(session: Session, user: User, name: str, description: str = "") -> models.Basket:
    """A new, empty basket owned by `user`. Not committed."""
    require(user, "basket")
    name = clean_name(name)
    if find_basket(session, name) is not None:
        raise VkppError(f"there is already a basket called {name!r}", code="basket_exists")
    basket = models.Basket(name=name, description=description.strip(), created_by=user.name, queries=[])
    session.add(basket)
    session.flush()
    return basket


def list_baskets(session: Session) -> list[BasketSummary]:
    """Every basket, by name, with how many excerpts and logged searches it holds."""
    counts = (
        select(models.BasketItem.basket_id, func.count().label("n"))
        .join(models.Passage, models.Passage.id == models.BasketItem.passage_id)
        .group_by(models.BasketItem.basket_id)
        .subquery()
    )
    statement = (
        select(models.Basket, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.basket_id == models.Basket.id)
        .order_by(models.Basket.name)
    )
    return [summary(basket, count) for basket, count in session.execute(statement)]


def summary(basket: models.Basket, excerpts: int) -> BasketSummary:
    return BasketSummary(
        id=basket.id,
        name=basket.name,
        description=basket.description or "",
        created_by=basket.created_by,
        created_at=basket.created_at,
        excerpts=int(excerpts),
        searches=len(basket.queries or []),
    )


def find_item(session: Session, basket: models.Basket, passage_id: int) -> models.BasketItem | None:
    return session.scalar(
        select(models.BasketItem).where(
            models.BasketItem.basket_id == basket.id, models.BasketItem.passage_id == passage_id
        )
    )


def add_to_basket(
    session: Session, user: User, basket_name: str, passage_id: int, note: str = "", query: dict | None = None
) -> bool:
    """Put a passage in a basket; True when it was not there yet. Adding again changes nothing but a
    new non-empty note. `query` (the search text, mode and filters that found it) joins the basket's
    log of searches. Not committed."""
    require(user, "basket")
    basket = get_basket(session, basket_name)
    if session.get(models.Passage, passage_id) is None:
        raise missing_passage(passage_id)
    if query:
        log_query(basket, query)
    item = find_item(session, basket, passage_id)
    if item is not None:
        if note.strip():
            item.note = note.strip()
        return False
    return insert_item(session, basket, passage_id, note.strip(), user)


def insert_item(session: Session, basket: models.Basket, passage_id: int, note: str, user: User) -> bool:
    position = session.scalar(
        select(func.coalesce(func.max(models.BasketItem.position), 0)).where(models.BasketItem.basket_id == basket.id)
    )
    item = models.BasketItem(
        basket_id=basket.id, passage_id=passage_id, note=note, added_by=user.name, position=int(position or 0) + 1
    )
    try:
        with session.begin_nested():  # another analyst may have added it a moment ago
            session.add(item)
    except IntegrityError:
        return False
    return True


def query_key(query: dict[str, Any]) -> str:
    """A query as logged: compact JSON with sorted keys, so the same search is logged once."""
    return json.dumps(query, sort_keys=True, default=jsonable, ensure_ascii=False, separators=(",", ":"))


def jsonable(value: Any) -> Any:
    """What JSON cannot hold as is: dataclasses (the search Filters) as dicts, sets as lists, the rest as text."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def log_query(basket: models.Basket, query: dict[str, Any]) -> None:
    key = query_key(query)
    logged = list(basket.queries or [])
    if key not in logged:
        basket.queries = [*logged, key]  # a new list, so the JSON column is seen to change


def basket_queries(session: Session, name: str) -> list[dict[str, Any]]:
    """The searches and filters logged on a basket, in the order they were first used."""
    return [parse_query(entry) for entry in get_basket(session, name).queries or []]


def parse_query(entry: Any) -> dict[str, Any]:
    if isinstance(entry, dict):
        return entry
    try:
        value = json.loads(entry)
    except (TypeError, ValueError):
        return {"query": str(entry)}
    return value if isinstance(value, dict) else {"query": str(value)}


def remove_from_basket(session: Session, user: User, basket_name: str, passage_id: int) -> bool:
    """Take a passage out of a basket; False when it was not in it. Not committed."""
    require(user, "basket")
    basket = get_basket(session, basket_name)
    item = find_item(session, basket, passage_id)
    if item is None:
        return False
    session.delete(item)
    session.flush()
    return True


def set_note(session: Session, user: User, basket_name: str, passage_id: int, note: str) -> None:
    """Replace the analyst's note on an excerpt. Not committed."""
    require(user, "basket")
    basket = get_basket(session, basket_name)
    item = find_item(session, basket, passage_id)
    if item is None:
        if session.get(models.Passage, passage_id) is None:
            raise VkppError(
                f"passage {passage_id} is no longer in the repository (its review was deleted or re-ingested), "
                f"so it has left the basket {basket.name!r}",
                code="unknown_passage",
            )
        raise VkppError(f"passage {passage_id} is not in the basket {basket.name!r}", code="not_in_basket")
    item.note = note.strip()


def rename_basket(session: Session, user: User, name: str, new_name: str) -> models.Basket:
    """Give a basket a new name. Not committed."""
    require(user, "basket")
    basket = get_basket(session, name)
    new_name = clean_name(new_name)
    other = find_basket(session, new_name)
    if other is not None and other.id != basket.id:
        raise VkppError(f"there is already a basket called {new_name!r}", code="basket_exists")
    basket.name = new_name
    session.flush()
    return basket


def delete_basket(session: Session, user: User, name: str) -> None:
    """Delete a basket and its excerpt list (never the passages). Analysts may delete their own baskets;
    deleting someone else's needs an admin. Not committed."""
    basket = get_basket(session, name)
    require(user, "basket" if basket.created_by == user.name else "delete")
    session.execute(delete(models.BasketItem).where(models.BasketItem.basket_id == basket.id))
    session.delete(basket)
    session.flush()


def excerpts_statement(basket_id: int) -> Any:
    """The basket's items with their passages and reviews, in the order they were added. Passages of a
    deleted review are gone from the repository, and so from this list."""
    item, passage, review = models.BasketItem, models.Passage, models.Review
    return (
        select(item, passage, review)
        .join(passage, passage.id == item.passage_id)
        .join(review, review.id == passage.review_id)
        .where(item.basket_id == basket_id)
        .order_by(item.position, item.id)
    )


def basket_excerpts(session: Session, name: str) -> list[Excerpt]:
    """The basket's excerpts, each with its citation, note and effective tags."""
    basket = get_basket(session, name)
    rows = session.execute(excerpts_statement(basket.id)).all()
    tags = effective_tags(session, [passage.id for _item, passage, _review in rows])
    return [excerpt(item, passage, review, tags.get(passage.id, [])) for item, passage, review in rows]


def excerpt(
    item: models.BasketItem, passage: models.Passage, review: models.Review, tags: list[EffectiveTag]
) -> Excerpt:
    return Excerpt(
        passage_id=passage.id,
        review_id=review.id,
        review_title=review.title,
        review_type=review.review_type,
        subject=review.subject,
        year=review.year,
        area=review.area,
        commissioner=review.commissioner,
        page_start=passage.page_start,
        page_end=passage.page_end,
        paragraph=passage.paragraph,
        section=passage.section,
        text=passage.text,
        note=item.note or "",
        themes=labels(tags, THEME_FACET),
        citation=citation(review, passage),
        review_citation=review_citation(review),
        subtype=review.subtype,
        kind=passage.kind,
        added_by=item.added_by,
        added_at=item.added_at,
        tags=tags,
    )


def can_delete_basket(user: User, basket: models.Basket) -> bool:
    """Whether `user` may delete this basket (its creator, or an admin)."""
    return can(user, "basket") and (basket.created_by == user.name or can(user, "delete"))

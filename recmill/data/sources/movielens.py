"""MovieLens ratings, as the GroupLens ml-100k files (u.data, u.item, u.user) or as
RecBole atomic files (*.inter, *.item, *.user: tab-separated, header of name:type)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recmill import schema as S
from recmill.data.sources.files import check_columns, header_of, missing_file, read_csv, to_number, to_timestamps
from recmill.data.tables import Origin, Tables, canonical_events, canonical_items, canonical_users
from recmill.errors import DataLoadError

GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
RATING_COLUMNS = (S.USER_ID, S.ITEM_ID, "rating", S.TIMESTAMP)
USER_COLUMNS = (S.USER_ID, "age", "gender", "occupation", "zip_code")
USER_TEXT = (S.USER_ID, "gender", "occupation", "zip_code")


def load_movielens(path: Path) -> Tables:
    if (path / "u.data").is_file():
        return _load_grouplens(path)
    inter = sorted(path.glob("*.inter")) if path.is_dir() else []
    if len(inter) > 1:
        raise DataLoadError(path, f"several RecBole .inter files ({', '.join(p.name for p in inter)}); keep one")
    if not inter:
        raise missing_file(path, "u.data (GroupLens ml-100k, with u.item, u.user) or a RecBole *.inter file (with *.item, *.user)")
    return _load_recbole(inter[0])


def _load_grouplens(path: Path) -> Tables:
    ratings = read_csv(path / "u.data", names=RATING_COLUMNS, sep="\t", quoted=False, text=(S.USER_ID, S.ITEM_ID))
    tables = Tables(_events(ratings, path / "u.data", first_line=1), origins={"events": Origin(str(path / "u.data"), 1)})
    if (path / "u.item").is_file():
        movies = read_csv(
            path / "u.item",
            names=("movie_id", "title", "release_date", "video_release_date", "imdb_url", *GENRES),
            sep="|", encoding="latin1", quoted=False, text=("movie_id", "title", "release_date"),
        )
        flags = movies[list(GENRES)].to_numpy() == 1
        genres = [" ".join(g for g, on in zip(GENRES, row) if on) for row in flags]
        # As in the RecBole copy: the year that ends the title is the release year, not part of the name.
        title = movies["title"].str.extract(r"^(?P<name>.*?)(?:\s*\((?P<year>\d{4})\))?\s*$")
        year = title["year"].fillna(movies["release_date"].str[-4:])
        items = pd.DataFrame(
            {
                S.ITEM_ID: movies["movie_id"],
                "name": title["name"],
                "category": [g.split()[0] if g else None for g in genres],
                "tags": genres,
                "release_year": pd.to_numeric(year, errors="coerce").astype("Int64"),
            }
        )
        tables.items, tables.origins["items"] = canonical_items(items), Origin(str(path / "u.item"), 1)
    if (path / "u.user").is_file():
        users = read_csv(path / "u.user", names=USER_COLUMNS, sep="|", quoted=False, text=USER_TEXT)
        tables.users, tables.origins["users"] = canonical_users(users), Origin(str(path / "u.user"), 1)
    return tables


def _load_recbole(inter: Path) -> Tables:
    tables = Tables(_events(_atomic(inter, RATING_COLUMNS), inter, first_line=2), origins={"events": Origin(str(inter), 2)})
    if inter.with_suffix(".item").is_file():
        movies = _atomic(inter.with_suffix(".item"), (S.ITEM_ID,)).rename(columns={"movie_title": "name", "class": "tags"})
        if "tags" in movies:
            movies.insert(1, "category", movies["tags"].str.split().str[0])
        if "release_year" in movies:
            # 'unkonwn' (sic) marks a missing year in the RecBole copy
            movies["release_year"] = pd.to_numeric(movies["release_year"], errors="coerce").astype("Int64")
        tables.items, tables.origins["items"] = canonical_items(movies), Origin(str(inter.with_suffix(".item")), 2)
    if inter.with_suffix(".user").is_file():
        users = _atomic(inter.with_suffix(".user"), (S.USER_ID,))
        tables.users, tables.origins["users"] = canonical_users(users), Origin(str(inter.with_suffix(".user")), 2)
    return tables


def _atomic(file: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """A RecBole atomic file: the column name is the part of each header field before ':'."""
    try:
        names = [field.split(":")[0] for field in header_of(file, "\t")]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataLoadError(file, f"cannot be read: {exc}") from None
    check_columns(file, names, required, header_line=1)
    text = [c for c in names if c in (S.USER_ID, S.ITEM_ID, "movie_title", "class", "gender", "occupation", "zip_code")]
    return read_csv(file, names=names, skip_rows=1, sep="\t", quoted=False, text=text)


def _events(ratings: pd.DataFrame, file: Path, first_line: int) -> pd.DataFrame:
    events = pd.DataFrame(
        {
            S.USER_ID: ratings[S.USER_ID],
            S.ITEM_ID: ratings[S.ITEM_ID],
            S.TIMESTAMP: to_timestamps(ratings[S.TIMESTAMP], file, S.TIMESTAMP, first_line),
            S.EVENT_TYPE: "rating",
            S.VALUE: to_number(ratings["rating"], file, "rating", first_line),
        }
    )
    return canonical_events(events)

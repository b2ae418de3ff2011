"""The API by area: analysis (extract, compare, odd-one-out), search (with index thumbnails), health, page."""

"""Chapter 3: the Flask app of chapter 2, served by the chapter-3 server, unchanged."""

from ch2_demo import REQUESTS
from ch2_flask import app
from ch3_demo import serve_and_show


def main():
    serve_and_show(app, REQUESTS[:3])  # the three routes both apps have


if __name__ == "__main__":
    main()

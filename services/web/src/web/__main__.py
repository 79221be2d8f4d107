"""`python -m web api` serves the Kaikukanta and OmaKaiku web interfaces."""

from web.app import main

if __name__ == "__main__":
    main()

"""`python -m cards api|worker|relay` starts one of the service's processes."""

from cards.bootstrap import main

if __name__ == "__main__":
    main()

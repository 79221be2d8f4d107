"""`python -m venues api|worker|relay` starts one of the service's processes."""

from venues.bootstrap import main

if __name__ == "__main__":
    main()

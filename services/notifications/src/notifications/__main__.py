"""`python -m notifications api|worker|relay` starts one of the service's processes."""

from notifications.bootstrap import main

if __name__ == "__main__":
    main()

"""Kaikukanta (staff) and OmaKaiku (holder) web interfaces over the four service APIs."""

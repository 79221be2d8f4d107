"""The web's pages, one router per area. They share web.pages and never import
each other; web.app includes them in this order (a fixed path such as
/staff/cards/new before a pattern such as /staff/cards/{card_number})."""

from . import (
    admin_network,
    admin_rounds,
    admin_users,
    distributor,
    kaikukeskus,
    messages,
    oma,
    oma_data,
    oma_push,
    public_stats,
    pwa,
    site,
    staff_signin,
    use_desks,
    venue_desk,
)

ROUTERS = [site.router, staff_signin.router, distributor.router, venue_desk.router,
           kaikukeskus.router, oma.router, oma_data.router, oma_push.router, pwa.router, admin_network.router,
           admin_rounds.router, admin_users.router, messages.router, use_desks.router,
           public_stats.router]

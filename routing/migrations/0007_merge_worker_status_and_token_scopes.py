# Joins two branches of work: worker status and the table generation (0004) and token scopes
# and traffic-change requests (0005, 0006). Nothing to change.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0004_serving_generation_and_worker_status"),
        ("routing", "0006_traffic_change_requests"),
    ]

    operations = []

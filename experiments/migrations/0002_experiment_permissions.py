# Data scientists run experiments and declare outcome metrics; every role may read them.
from django.db import migrations

# Frozen here (a migration must not import app code that may change).
GRANTS = {
    "data scientist": [
        "run_experiment",
        "view_experiment",
        "view_experimentlook",
        "view_feedback",
        "view_variantquality",
        "add_outcomemetric",
        "view_outcomemetric",
    ],
    "approver": ["view_experiment", "view_experimentlook", "view_variantquality", "view_outcomemetric"],
    "SRE": [
        "view_experiment",
        "view_experimentlook",
        "view_feedback",
        "view_variantquality",
        "view_outcomemetric",
    ],
}


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations (post_migrate); create them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="experiments", codename__in=codenames)
        )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group in Group.objects.filter(name__in=GRANTS):
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="experiments"))


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0001_initial"),
        ("routing", "0001_initial"),
    ]

    operations = [migrations.RunPython(grant, revoke)]

"""Every role group may see rollout plans in the admin (what they may do is routing's permissions)."""

from __future__ import annotations

from django.db import migrations

GROUPS = ("data scientist", "approver", "SRE")
VIEW = ("view_rolloutplan", "view_rolloutevent")


def give_view_permissions(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations (post_migrate); the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    perms = list(Permission.objects.filter(content_type__app_label="delivery", codename__in=VIEW))
    for name in GROUPS:
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*perms)


def take_view_permissions(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    for group in apps.get_model("auth", "Group").objects.filter(name__in=GROUPS):
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="delivery", codename__in=VIEW)
        )


class Migration(migrations.Migration):
    dependencies = [("delivery", "0001_initial"), ("routing", "0007_merge_worker_status_and_token_scopes")]

    operations = [migrations.RunPython(give_view_permissions, take_view_permissions)]

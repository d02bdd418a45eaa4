# Service tokens become governed (issue 10): scopes on the token, and permissions to create,
# revoke and edit tokens, given to the SRE group. The lead may renumber this at merge.

from django.db import migrations, models

import routing.models.serving

# Frozen here (a migration must not import app code that may change).
TOKEN_PERMISSIONS = ["create_token", "revoke_token", "edit_token_scope", "view_servicetoken"]
GROUP = "SRE"


def give_token_permissions(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after all migrations (post_migrate); the group needs
    # them now, so create them first (idempotent).
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for codename in TOKEN_PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label="routing", codename=codename))


def take_token_permissions(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name=GROUP).first()
    if group is not None:
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label="routing", codename__in=TOKEN_PERMISSIONS)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0003_prediction_log_inputs_as_sent"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="servicetoken",
            options={
                "ordering": ["name"],
                "permissions": [
                    ("create_token", "Can create a service token"),
                    ("revoke_token", "Can revoke a service token"),
                    ("edit_token_scope", "Can change a service token's endpoints, scopes and limits"),
                ],
            },
        ),
        migrations.AddField(
            model_name="servicetoken",
            name="scopes",
            field=models.JSONField(
                blank=True,
                default=routing.models.serving.default_scopes,
                help_text="What it may call: predict, feedback, batch.",
            ),
        ),
        migrations.RunPython(give_token_permissions, take_token_permissions),
    ]

# A four-eyes request can also be a traffic change (issue 10): a split that hands challengers
# more than GOVERNANCE_MAX_CHALLENGER_SHARE is requested by one person, approved by another.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0005_token_permissions"),
    ]

    operations = [
        migrations.AddField(
            model_name="promotionrequest",
            name="kind",
            field=models.CharField(
                choices=[("promotion", "Promotion"), ("traffic", "Traffic change")],
                default="promotion",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="promotionrequest",
            name="weights",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="Traffic requests only: the split to set (name -> weight).",
            ),
        ),
    ]

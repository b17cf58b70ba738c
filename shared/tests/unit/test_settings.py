import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from clinishare_shared.settings import ServiceSettings


class ChartsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CHARTS_", extra="ignore")
    service_name: str = "charts"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MONGODB_URL", "AMQP_URL", "JWKS_URL", "EVENT_EXCHANGE", "CHARTS_MONGODB_URL", "CHARTS_AMQP_URL",
                "CHARTS_DELIVERY_LIMIT", "CHARTS_QUEUE_NAME", "CHARTS_EVENT_EXCHANGE", "CHARTS_JWKS_URL",
                "DELIVERY_LIMIT", "QUEUE_NAME"):
        monkeypatch.delenv(var, raising=False)


def test_defaults() -> None:
    s = ChartsSettings()
    assert s.mongodb_url is None and s.amqp_url is None
    assert s.database == "clinishare_charts" and s.queue == "charts"
    assert s.event_exchange == "clinishare.events" and s.delivery_limit == 5


def test_prefixed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARTS_DELIVERY_LIMIT", "3")
    monkeypatch.setenv("CHARTS_QUEUE_NAME", "charts-q")
    monkeypatch.setenv("DELIVERY_LIMIT", "9")  # unprefixed: not ours
    s = ChartsSettings()
    assert s.delivery_limit == 3 and s.queue == "charts-q"


def test_unprefixed_system_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URL", "mongodb://db:27017")
    monkeypatch.setenv("AMQP_URL", "amqp://guest:guest@mq:5672/")
    monkeypatch.setenv("JWKS_URL", "http://identity/.well-known/jwks.json")
    monkeypatch.setenv("EVENT_EXCHANGE", "other.events")
    s = ChartsSettings()
    assert s.mongodb_url == "mongodb://db:27017" and s.amqp_url == "amqp://guest:guest@mq:5672/"
    assert s.jwks_url == "http://identity/.well-known/jwks.json" and s.event_exchange == "other.events"


def test_prefixed_overrides_unprefixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URL", "mongodb://db:27017")
    monkeypatch.setenv("CHARTS_MONGODB_URL", "mongodb://charts-db:27017")
    monkeypatch.setenv("AMQP_URL", "amqp://u:realpw@mq/")
    monkeypatch.setenv("CHARTS_AMQP_URL", "amqp://u:realpw@charts-mq/")
    s = ChartsSettings()
    assert s.mongodb_url == "mongodb://charts-db:27017" and s.amqp_url == "amqp://u:realpw@charts-mq/"
    assert ChartsSettings(mongodb_url="mongodb://explicit").mongodb_url == "mongodb://explicit"


@pytest.mark.parametrize("url", ["amqp://user:changeme@mq/", "mongodb://root:password@db/",
                                 "amqp://u:CHANGEME@mq/", "amqp://u:Secret@mq:5672/", "mongodb://a:changethis@h1,h2/x"])
def test_placeholder_password_rejected(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    field = "amqp_url" if url.startswith("amqp") else "mongodb_url"
    with pytest.raises(ValidationError):
        ChartsSettings(**{field: url})
    monkeypatch.setenv(field.upper(), url)  # also through the unprefixed fallback
    with pytest.raises(ValidationError):
        ChartsSettings()


def test_real_passwords_accepted() -> None:
    s = ChartsSettings(amqp_url="amqp://guest:guest@127.0.0.1:5672/", mongodb_url="mongodb://u:passwordless-x9@db/")
    assert s.amqp_url and s.mongodb_url


def test_delivery_limit_bounds() -> None:
    with pytest.raises(ValidationError):
        ChartsSettings(delivery_limit=0)


def test_unknown_prefixed_variable_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARTS_PROT", "8002")  # a typo of CHARTS_PORT
    monkeypatch.setenv("CHARTS_DELIVERY_LIMIT", "3")  # known: fine
    monkeypatch.setenv("OTHER_PROT", "1")  # someone else's prefix: not ours to judge
    with pytest.raises(ValidationError, match="CHARTS_PROT") as info:
        ChartsSettings()
    assert "CHARTS_DELIVERY_LIMIT" not in str(info.value) and "OTHER_PROT" not in str(info.value)
    monkeypatch.delenv("CHARTS_PROT")
    assert ChartsSettings().delivery_limit == 3


def test_host_and_port_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARTS_HOST", "0.0.0.0")
    monkeypatch.setenv("CHARTS_PORT", "9123")
    monkeypatch.setenv("PORT", "1")  # unprefixed PORT is not a service's setting (it was, and it lost)
    s = ChartsSettings()
    assert (s.host, s.port) == ("0.0.0.0", 9123)
    with pytest.raises(ValidationError):
        ChartsSettings(port=0)


def test_missing_servers_and_the_embedded_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMBEDDED_ENGINES", raising=False)
    assert ChartsSettings().missing_servers() == ["MONGODB_URL", "AMQP_URL"]
    assert ChartsSettings().embedded_engines is False
    monkeypatch.setenv("EMBEDDED_ENGINES", "true")
    assert ChartsSettings().embedded_engines is True
    s = ChartsSettings(mongodb_url="mongodb://db:27017", amqp_url="amqp://u:realpw@mq/")
    assert s.missing_servers() == []

# finsync as a self-hoster runs it: a wheel (migrations included), installed without the sources.
FROM python:3.11-slim AS build
WORKDIR /build
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM python:3.11-slim
COPY --from=build /dist /dist
RUN pip install --no-cache-dir /dist/*.whl && rm -rf /dist \
    && useradd --create-home finsync && mkdir /data && chown finsync /data
USER finsync
# Settings are read from the environment (and a .env in the working directory, if any).
WORKDIR /data
EXPOSE 8000
CMD ["sh", "-c", "finsync migrate && finsync serve --host 0.0.0.0 --port 8000"]

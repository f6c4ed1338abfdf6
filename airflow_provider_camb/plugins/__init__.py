"""The provider's Airflow plugin (3.1+): the "CAMB files" view, where the files a CAMB task wrote play."""

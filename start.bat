@echo off
rem Start TTS Studio on Windows: creates .venv on first run, installs the studio, then serves on
rem http://127.0.0.1:8600. Arguments go to `tts-studio serve`.
setlocal
cd /d "%~dp0"
where py >nul 2>nul
if %errorlevel%==0 (set "PY=py -3") else (set "PY=python")
%PY% --version >nul 2>nul
if errorlevel 1 (
    echo Python 3.11 or newer is needed: install it from https://www.python.org/downloads/ and run me again.
    pause
    exit /b 1
)
if not exist ".venv\Scripts\python.exe" (
    echo First run: creating .venv and installing TTS Studio ^(a minute or two^)...
    %PY% -m venv .venv || goto :fail
)
if not exist ".venv\.tts-studio-installed" (
    ".venv\Scripts\python.exe" -m pip install --quiet --disable-pip-version-check --upgrade pip || goto :fail
    ".venv\Scripts\python.exe" -m pip install --quiet --disable-pip-version-check -e . || goto :fail
    echo installed> ".venv\.tts-studio-installed"
)
".venv\Scripts\python.exe" -m tts_studio serve %*
exit /b %errorlevel%
:fail
echo Installation failed; see the messages above.
pause
exit /b 1

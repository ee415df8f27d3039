@echo off
rem TTS Studio launcher for Windows: double-click it.
rem First run: creates .venv (uv when available, else python -m venv + pip) and installs the studio;
rem later runs skip the install unless pyproject.toml or the engine choice changed. Then it starts the
rem server and opens the browser once it answers; if the studio is already running, it opens the browser.
rem   start.bat [--no-browser] [--engines chatterbox,voxcpm] [--reinstall] [serve flags such as --port 9000]
rem TTS_STUDIO_ENGINES=chatterbox,voxcpm also installs the GPU engines (CUDA torch when nvidia-smi works).
setlocal EnableDelayedExpansion
cd /d "%~dp0"

set "OPEN=--open-browser"
set "ENGINES=%TTS_STUDIO_ENGINES%"
set "REINSTALL=0"
set "ARGS="
:parse
if "%~1"=="" goto parsed
if /i "%~1"=="--no-browser" (set "OPEN=" & shift & goto parse)
if /i "%~1"=="--reinstall" (set "REINSTALL=1" & shift & goto parse)
if /i "%~1"=="--engines" (set "ENGINES=%~2" & shift & shift & goto parse)
set "ARGS=!ARGS! %1"
shift
goto parse
:parsed

set "LOGDIR=%LOCALAPPDATA%\TTSStudio\Logs"
if not exist "%LOGDIR%" mkdir "%LOGDIR%"
set "LOG=%LOGDIR%\install.log"

set "PY="
for %%P in ("py -3.12" "py -3.11" "py -3.13" "python") do (
    if not defined PY (
        %%~P -c "import sys; sys.exit(0 if (3,11) <= sys.version_info[:2] < (3,14) else 1)" >nul 2>nul && set "PY=%%~P"
    )
)
if not defined PY (
    echo Python 3.11, 3.12 or 3.13 is needed. Install it from https://www.python.org/downloads/
    echo ^(tick "Add python.exe to PATH"^) and run me again.
    pause
    exit /b 1
)

set "UV="
where uv >nul 2>nul && set "UV=uv"
if not defined UV if exist ".tools\uvenv\Scripts\uv.exe" set "UV=.tools\uvenv\Scripts\uv.exe"
if not defined UV (
    %PY% -m venv .tools\uvenv >>"%LOG%" 2>&1 && .tools\uvenv\Scripts\python.exe -m pip install -q uv >>"%LOG%" 2>&1 && set "UV=.tools\uvenv\Scripts\uv.exe"
)

set "EXTRAS="
if defined ENGINES set "EXTRAS=[%ENGINES: =%]"
set "GPU=cpu"
nvidia-smi -L >nul 2>nul && set "GPU=cuda"
for /f "delims=" %%H in ('certutil -hashfile pyproject.toml SHA256 ^| findstr /v ":"') do set "HASH=%%H"
set "STAMPVALUE=%HASH% extras=%EXTRAS% gpu=%GPU% uv=%UV%"

if "%REINSTALL%"=="1" if exist .venv rmdir /s /q .venv
set "CURRENT="
if exist ".venv\.tts-studio-stamp" set /p CURRENT=<".venv\.tts-studio-stamp"
if not "%CURRENT%"=="%STAMPVALUE%" (
    echo Setting up TTS Studio ^(first run, or something changed^): a minute or two. Log: %LOG%
    if defined UV (
        if not exist ".venv\Scripts\python.exe" %UV% venv .venv >>"%LOG%" 2>&1 || goto :fail
        if defined EXTRAS if "%GPU%"=="cuda" %UV% pip install --python .venv\Scripts\python.exe --torch-backend auto torch==2.6.0 torchaudio==2.6.0 >>"%LOG%" 2>&1 || goto :fail
        %UV% pip install --python .venv\Scripts\python.exe -e ".%EXTRAS%" >>"%LOG%" 2>&1 || goto :fail
    ) else (
        if not exist ".venv\Scripts\python.exe" %PY% -m venv .venv >>"%LOG%" 2>&1 || goto :fail
        .venv\Scripts\python.exe -m pip install -e ".%EXTRAS%" >>"%LOG%" 2>&1 || goto :fail
    )
    >".venv\.tts-studio-stamp" echo %STAMPVALUE%
)

.venv\Scripts\python.exe -m tts_studio serve %OPEN% %ARGS%
if errorlevel 1 pause
exit /b %errorlevel%

:fail
echo Installation failed; see %LOG%
pause
exit /b 1
